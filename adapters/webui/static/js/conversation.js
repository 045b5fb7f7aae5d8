// A room's conversation as the frames of docs/protocol.md build it. It
// knows nothing of the DOM: the page renders what it says changed.
//
// Every event frame carries the version of its event; a frame at or below
// the version already applied is a duplicate and changes nothing, so a
// resumed connection (?after=) can never show a chunk twice. A history
// frame replaces everything. The hash of the last event applied goes with
// its version into a resume (?after=&hash=), so the server can tell when
// the log no longer holds that position and send the room afresh.

export class Conversation {
  constructor() {
    this.reset([], -1, "");
  }

  // reset replaces the conversation with messages (wire objects, oldest
  // first) at version, whose event has hash.
  reset(messages, version, hash) {
    this.byId = new Map();
    this.order = [];
    for (const m of messages) this.put(fromWire(m));
    this.version = version;
    this.hash = hash || "";
    this.synced = version >= 0;
  }

  put(m) {
    if (!this.byId.has(m.id)) this.order.push(m.id);
    this.byId.set(m.id, m);
    return m;
  }

  messages() {
    return this.order.map((id) => this.byId.get(id));
  }

  // streaming returns the answer still streaming, if any.
  streaming() {
    for (let k = this.order.length - 1; k >= 0; k--) {
      const m = this.byId.get(this.order[k]);
      if (m.status === "streaming") return m;
    }
    return null;
  }

  // apply applies a server frame and reports what happened: {reset} for a
  // history frame, {changed: id} for an event that changed a message,
  // {stale} for a duplicate, {gap} when an answer's chunks skip (the view
  // must be reloaded), and {} for frames that are not events.
  apply(f) {
    if (f.type === "history") {
      this.reset(f.messages || [], f.version, f.hash);
      return { reset: true };
    }
    if (typeof f.version !== "number") return {};
    if (f.version <= this.version) return { stale: true };
    let changed = null;
    switch (f.type) {
      case "message":
        changed = this.put({ id: f.id, role: "user", text: f.message, status: "complete", sources: [], clientId: f.client_id || "", version: f.version });
        break;
      case "chunk": {
        const m = this.answer(f.answer_id, f.version);
        if (m.nextSeq !== undefined && f.seq !== m.nextSeq) {
          if (f.seq < m.nextSeq) return { stale: true };
          return { gap: true };
        }
        m.text += f.message;
        m.nextSeq = f.seq + (f.deltas || 1); // a chunk joins f.deltas of the model's deltas
        m.status = "streaming";
        changed = m;
        break;
      }
      case "answer": {
        const m = this.answer(f.answer_id, f.version);
        m.text = f.message;
        m.status = "complete";
        m.sources = f.sources || [];
        changed = m;
        break;
      }
      case "answer_failed":
      case "answer_cancelled": {
        const m = this.answer(f.answer_id, f.version);
        m.status = f.type === "answer_failed" ? "failed" : "cancelled";
        m.reason = f.reason || "";
        changed = m;
        break;
      }
    }
    this.version = f.version;
    this.hash = f.hash || "";
    if (changed) changed.version = f.version;
    return changed ? { changed: changed.id } : {};
  }

  // answer returns the answer with id, adding it (streaming, no text yet)
  // when this is its first frame.
  answer(id, version) {
    return this.byId.get(id) || this.put({ id, role: "assistant", text: "", status: "streaming", sources: [], version, nextSeq: 0 });
  }

  // prepend adds older messages (wire objects, any order) before the
  // oldest one held; those already held are skipped. It returns how many
  // it added.
  prepend(messages) {
    const older = messages.map(fromWire).filter((m) => !this.byId.has(m.id)).sort((a, b) => a.version - b.version);
    for (const m of older) this.byId.set(m.id, m);
    this.order = older.map((m) => m.id).concat(this.order);
    return older.length;
  }

  // oldestVersion is the version of the oldest message held, or undefined.
  oldestVersion() {
    let v;
    for (const m of this.byId.values()) if (v === undefined || m.version < v) v = m.version;
    return v;
  }
}

// fromWire turns a history item or REST message into the page's shape.
// A streaming answer from history continues with whatever chunk comes
// next: its seq so far is not in the history item.
export function fromWire(m) {
  return { id: m.id, role: m.role, text: m.message, status: m.status, sources: m.sources || [], clientId: m.client_id || "", createdAt: m.created_at, version: m.version };
}
