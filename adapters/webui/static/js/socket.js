// One room's WebSocket (docs/protocol.md §2-§8): a fresh single-use ticket
// over REST for every connection (a JWT never goes into a URL), the
// parley.v1 subprotocol, and on a dropped connection a reconnect with
// backoff and ?after=<last version seen>, so the room continues with no gap
// and no duplicate.

import { ApiError, tokenClaims } from "./api.js";

export const SUBPROTOCOL = "parley.v1";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
const RATE_LIMITED_MS = 5000; // a 4429 waits at least this long
const PING_MS = 25000; // an application ping: browsers cannot send control pings
const SILENCE_MS = 60000; // nothing heard for this long: the connection is dead

// Close codes the server sends (§8).
export const CLOSE = { unauthorized: 4401, forbidden: 4403, rateLimited: 4429, tooSlow: 4000 };

// RoomSocket keeps one room connected until stop. Its owner supplies:
//   after()          the version to resume after, or -1 for a history frame
//   hash()           the hash of the event at that version ("" if unknown)
//   onFrame(frame)   every frame, parsed
//   onState(state, detail)  "connecting" | "live" | "reconnecting" {seconds}
//                    | "expired" | "gone" | "closed" {code, reason}
//   onError(err)     an ApiError that stops nothing (a 429 while fetching a ticket)
export class RoomSocket {
  constructor(api, roomId, handlers) {
    this.api = api;
    this.roomId = roomId;
    this.h = handlers;
    this.ws = null;
    this.attempt = 0;
    this.unauthorized = 0;
    this.timer = null;
    this.stopped = false;
    this.live = false;
    this.pinger = null;
    this.heardAt = 0;
    this.onOnline = () => this.retryNow();
    window.addEventListener("online", this.onOnline);
  }

  start() {
    this.connect();
  }

  // stop closes the connection for good.
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    window.removeEventListener("online", this.onOnline);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  // send sends a client frame; false when not connected.
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.live) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // resync reconnects without ?after=, for a fresh history frame.
  resync() {
    this.forceHistory = true;
    this.drop();
  }

  // retryNow skips the wait of a pending reconnect.
  retryNow() {
    if (this.stopped || this.ws || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  drop() {
    if (this.ws) this.ws.close(1000, "reconnect"); // a client close: onclose reconnects
  }

  async connect() {
    this.timer = null;
    if (this.stopped) return;
    this.h.onState(this.attempt === 0 ? "connecting" : "reconnecting", { seconds: 0 });
    let ticket;
    try {
      ticket = (await this.api.ticket(this.roomId)).ticket;
    } catch (e) {
      if (this.stopped) return;
      if (e instanceof ApiError && e.status === 401) return this.h.onState("expired", {});
      if (e instanceof ApiError && e.status === 404) return this.h.onState("gone", {});
      if (e instanceof ApiError && e.status === 429) {
        this.h.onError(e);
        return this.retry(Math.max(e.retryAfter * 1000, RATE_LIMITED_MS));
      }
      return this.retry();
    }
    if (this.stopped) return;
    const after = this.forceHistory ? -1 : this.h.after();
    this.forceHistory = false;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ ticket });
    if (after >= 0) {
      q.set("after", String(after));
      const hash = this.h.hash ? this.h.hash() : "";
      if (hash) q.set("hash", hash); // a position the log lost gets a fresh history
    }
    const ws = new WebSocket(`${scheme}//${location.host}/ws/chat/${this.roomId}/?${q}`, [SUBPROTOCOL]);
    this.ws = ws;
    this.live = false;
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.heardAt = Date.now();
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return; // not JSON: nothing a client can do with it
      }
      if (!this.live) {
        this.live = true;
        this.attempt = 0;
        this.unauthorized = 0;
        this.h.onState("live", {});
      }
      this.h.onFrame(f);
    };
    ws.onopen = () => {
      // A resumed connection to a quiet room gets no frame: the pong
      // proves it was accepted (a refused one is closed instead).
      ws.send(JSON.stringify({ type: "ping" }));
      this.heardAt = Date.now();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.keepAlive(ws), PING_MS);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      clearInterval(this.pinger);
      this.ws = null;
      this.live = false;
      if (this.stopped) return;
      this.closed(ev.code, ev.reason);
    };
  }

  keepAlive(ws) {
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.heardAt > SILENCE_MS) {
      ws.close(1000, "reconnect");
      return;
    }
    ws.send(JSON.stringify({ type: "ping" }));
  }

  closed(code, reason) {
    switch (code) {
      case CLOSE.unauthorized: {
        // An expired token, or a ticket that did not make it: a second
        // 4401 in a row, or a token past its exp, needs a new token.
        const exp = (tokenClaims(this.api.getToken() || "") || {}).exp;
        if (++this.unauthorized >= 2 || (exp && exp * 1000 <= Date.now() + 1000)) return this.h.onState("expired", {});
        return this.retry();
      }
      case CLOSE.forbidden:
        return this.h.onState("gone", {});
      case CLOSE.rateLimited:
        return this.retry(RATE_LIMITED_MS);
      case 1007:
      case 1008:
      case 1009:
        this.h.onState("closed", { code, reason });
        return this.retry(BACKOFF_MAX_MS);
      default: // 1000, 1001, 1006, 1011, 1012, 4000: reconnect where we were
        return this.retry();
    }
  }

  // retry reconnects after a backoff (at least min ms) with jitter.
  retry(min = 0) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const wait = Math.max(min, base / 2 + Math.random() * (base / 2));
    this.attempt++;
    this.h.onState("reconnecting", { seconds: Math.ceil(wait / 1000) });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
