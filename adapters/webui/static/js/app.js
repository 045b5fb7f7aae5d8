// The chat page: sign-in, rooms, and one room's conversation at a time.

import { t, translate } from "./i18n.js";
import { h, byId } from "./dom.js";
import { Api, ApiError, tokenClaims } from "./api.js";
import { Conversation } from "./conversation.js";
import { RoomSocket } from "./socket.js";
import { renderMarkdown } from "./markdown.js";

const TOKEN_KEY = "parley.token";
const DEV_USER_KEY = "parley.devUser";
const MAX_MESSAGE_BYTES = 8192;
const NOTICE_MS = 10000;
const CONFIRM_MS = 4000;

const devLogin = document.querySelector('meta[name="parley-dev-login"]')?.content === "true";

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  rooms: [],
  room: null, // {id, title}
  conv: new Conversation(),
  socket: null,
  pending: null, // the message sent and not yet echoed: {clientId, text}
  nodes: new Map(), // message id -> its <li>
  composing: false,
};
const api = new Api(() => state.token);

const ui = {};
for (const id of ["conn", "who", "signout", "signin", "signin-reason", "dev-form", "dev-user", "token-form", "token-input",
  "signin-error", "app", "new-room", "new-room-title", "room-list", "rooms-empty", "no-room", "room", "room-title",
  "load-older", "messages", "notice", "composer", "input", "stop", "send"]) {
  ui[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = byId(id);
}

// ---- signing in -------------------------------------------------------

function userOf(token) {
  const c = tokenClaims(token) || {};
  return String(c.user_id ?? c.sub ?? "");
}

function showSignIn(reason) {
  ui.app.hidden = true;
  ui.signout.hidden = true;
  ui.signin.hidden = false;
  ui.signinReason.textContent = reason || "";
  ui.signinReason.hidden = !reason;
  ui.signinError.hidden = true;
  ui.devForm.hidden = !devLogin;
  if (devLogin && !ui.devUser.value) ui.devUser.value = localStorage.getItem(DEV_USER_KEY) || userOf(state.token);
  (devLogin ? ui.devUser : ui.tokenInput).focus();
}

// expired stops the room's socket and asks for a new token; the room and
// its conversation stay, to resume after the version already shown.
function expired() {
  if (state.socket) state.socket.stop();
  state.socket = null;
  setConn("expired");
  showSignIn(t("expired"));
}

async function signIn(token) {
  try {
    await new Api(() => token).rooms();
  } catch (e) {
    ui.signinError.textContent = t("tokenRejected", { message: e.message });
    ui.signinError.hidden = false;
    return;
  }
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
  showApp();
}

function signOut() {
  closeRoom();
  state.token = "";
  localStorage.removeItem(TOKEN_KEY);
  state.rooms = [];
  renderRooms();
  setConn("idle");
  showSignIn("");
}

ui.devForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const user = ui.devUser.value.trim();
  try {
    const res = await new Api(() => "").devToken(user);
    localStorage.setItem(DEV_USER_KEY, user);
    await signIn(res.token);
  } catch (err) {
    ui.signinError.textContent = err.message;
    ui.signinError.hidden = false;
  }
});

ui.tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const token = ui.tokenInput.value.trim().replace(/^Bearer\s+/i, "");
  if (token) signIn(token).then(() => { ui.tokenInput.value = ""; });
});

ui.signout.addEventListener("click", signOut);

// Another tab signed in or out.
window.addEventListener("storage", (e) => {
  if (e.key !== TOKEN_KEY) return;
  if (!e.newValue) {
    if (state.token) signOut();
  } else if (e.newValue !== state.token) {
    state.token = e.newValue;
    if (!ui.signin.hidden) showApp();
  }
});

function showApp() {
  ui.signin.hidden = true;
  ui.app.hidden = false;
  ui.signout.hidden = false;
  ui.who.textContent = t("signedInAs", { user: userOf(state.token) });
  loadRooms().then(route);
}

// failed handles an ApiError of a REST call: a 401 asks for a new token,
// anything else is shown.
function failed(e) {
  if (e instanceof ApiError && e.status === 401) return expired();
  if (e instanceof ApiError && e.status === 429) return notice(t("err.rate_limited_after", { s: e.retryAfter || 1 }), "rate_limited");
  if (e instanceof ApiError && e.status === 0) return notice(t("err.network"), "network");
  notice(t("err.generic", { message: e.message }), e.code || "error");
}

// ---- rooms --------------------------------------------------------------

async function loadRooms() {
  try {
    state.rooms = await api.rooms();
  } catch (e) {
    return failed(e);
  }
  // A room just created may not be listed yet (the list is a projection).
  if (state.room && !state.rooms.some((r) => r.id === state.room.id) && state.room.title) state.rooms.unshift(state.room);
  renderRooms();
}

function renderRooms() {
  ui.roomList.replaceChildren(...state.rooms.map((r) => {
    const del = h("button", { type: "button", class: "delete", text: "×", title: t("deleteRoom"), "aria-label": t("deleteRoomLabel", { title: r.title }) });
    del.addEventListener("click", () => deleteRoom(r, del));
    return h("li", { class: state.room && state.room.id === r.id ? "active" : "", dataset: { id: r.id } },
      h("button", { type: "button", class: "open", text: r.title, title: r.title, onclick: () => { location.hash = "#room=" + r.id; } }),
      del);
  }));
  ui.roomsEmpty.hidden = state.rooms.length > 0;
}

ui.newRoom.addEventListener("submit", async (e) => {
  e.preventDefault();
  const title = ui.newRoomTitle.value.trim();
  if (!title) return;
  let room;
  try {
    room = await api.createRoom(title);
  } catch (err) {
    return failed(err);
  }
  ui.newRoomTitle.value = "";
  state.rooms = [room, ...state.rooms.filter((r) => r.id !== room.id)];
  renderRooms();
  location.hash = "#room=" + room.id;
});

async function deleteRoom(r, button) {
  if (!button.classList.contains("confirm")) {
    button.classList.add("confirm");
    button.textContent = t("confirmDelete");
    setTimeout(() => { button.classList.remove("confirm"); button.textContent = "×"; }, CONFIRM_MS);
    return;
  }
  try {
    await api.deleteRoom(r.id);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) return failed(e);
  }
  removeRoom(r.id);
}

function removeRoom(id) {
  state.rooms = state.rooms.filter((r) => r.id !== id);
  if (state.room && state.room.id === id) location.hash = "";
  renderRooms();
}

// ---- one room -----------------------------------------------------------

function route() {
  const m = /^#room=(\d+)$/.exec(location.hash);
  if (m) openRoom(Number(m[1]));
  else closeRoom();
}
window.addEventListener("hashchange", route);

function openRoom(id) {
  if (state.room && state.room.id === id) {
    if (!state.socket) connect(); // resuming after a new sign-in
    return;
  }
  closeRoom();
  const known = state.rooms.find((r) => r.id === id);
  state.room = { id, title: known ? known.title : "" };
  ui.roomTitle.textContent = state.room.title;
  if (!known) {
    api.room(id).then((r) => { state.room.title = r.title; ui.roomTitle.textContent = r.title; }, () => {});
  }
  state.conv = new Conversation();
  renderAll();
  ui.noRoom.hidden = true;
  ui.room.hidden = false;
  renderRooms();
  connect();
  ui.input.focus();
}

function connect() {
  const id = state.room.id;
  state.socket = new RoomSocket(api, id, {
    after: () => (state.conv.synced ? state.conv.version : -1),
    hash: () => (state.conv.synced ? state.conv.hash : ""),
    onFrame,
    onState: socketState,
    onError: failed,
  });
  state.socket.start();
}

function closeRoom() {
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.room = null;
  state.pending = null;
  state.conv = new Conversation();
  state.nodes.clear();
  ui.messages.replaceChildren();
  ui.room.hidden = true;
  ui.noRoom.hidden = false;
  setConn("idle");
  renderRooms();
}

function setConn(s, detail = {}) {
  ui.conn.dataset.state = s;
  ui.conn.textContent = t("conn." + s, { s: detail.seconds });
}

function socketState(s, detail) {
  switch (s) {
    case "live":
      setConn("live");
      if (state.pending) state.socket.send(messageFrame(state.pending)); // idempotent: same client_id
      if (ui.notice.dataset.code === "not_sent") hideNotice();
      break;
    case "expired":
      expired();
      break;
    case "gone": {
      const id = state.room.id;
      removeRoom(id);
      notice(t("roomGone"), "gone");
      break;
    }
    case "closed":
      notice(t("protocolError", { code: detail.code, reason: detail.reason || "" }), "closed");
      break;
    default:
      setConn(s, detail);
  }
}

function onFrame(f) {
  if (f.type === "error") return errorFrame(f);
  const r = state.conv.apply(f);
  if (r.gap) return state.socket.resync();
  if (r.reset) {
    renderAll();
    checkOlder();
  } else if (r.changed) {
    renderMessage(state.conv.byId.get(r.changed));
  }
  if (f.type === "message" && state.pending && f.client_id === state.pending.clientId) {
    if (ui.input.value === state.pending.text) ui.input.value = "";
    state.pending = null;
    if (ui.notice.dataset.code !== "rate_limited") hideNotice();
  }
  updateComposer();
}

const errorKeys = { busy: "err.busy", rate_limited: "err.rate_limited", too_large: "err.too_large", invalid: "err.invalid", internal: "err.internal" };

function errorFrame(f) {
  if (state.pending && f.client_id === state.pending.clientId) state.pending = null;
  notice(t(errorKeys[f.code] || "err.generic", { message: f.message }), f.code);
  updateComposer();
}

// ---- rendering ------------------------------------------------------------

function atBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 48;
}

function renderAll() {
  state.nodes.clear();
  ui.messages.replaceChildren(...state.conv.messages().map((m) => {
    const li = h("li", { class: "msg " + m.role, dataset: { id: m.id } });
    state.nodes.set(m.id, li);
    fill(li, m);
    return li;
  }));
  ui.messages.scrollTop = ui.messages.scrollHeight;
  updateComposer();
}

function renderMessage(m) {
  const follow = atBottom();
  let li = state.nodes.get(m.id);
  if (!li) {
    li = h("li", { class: "msg " + m.role, dataset: { id: m.id } });
    state.nodes.set(m.id, li);
    ui.messages.append(li);
  }
  fill(li, m);
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

// fill renders message m into li; the text only ever becomes text nodes.
function fill(li, m) {
  li.dataset.status = m.status;
  li.dataset.version = m.version;
  const meta = h("div", { class: "meta" }, h("span", { class: "role", text: m.role === "user" ? t("you") : t("assistant") }));
  if (m.role === "assistant" && m.status !== "complete") meta.append(h("span", { class: "badge " + m.status, text: t("status." + m.status) }));
  meta.append(h("span", { class: "spacer" }));
  if (m.role === "assistant" && m.status === "failed") meta.append(h("button", { type: "button", class: "quiet retry", text: t("retry"), onclick: () => retry(m.id) }));
  if (m.role === "assistant" && m.text) {
    const copyBtn = h("button", { type: "button", class: "quiet copy", text: t("copy") });
    copyBtn.addEventListener("click", () => copy(m.text, copyBtn));
    meta.append(copyBtn);
  }
  const body = h("div", { class: "body" });
  if (m.role === "user") body.textContent = m.text;
  else body.append(renderMarkdown(m.text));
  const parts = [meta, body];
  if (m.reason) parts.push(h("p", { class: "reason", text: t("reason." + m.reason) }));
  if (m.sources && m.sources.length) {
    parts.push(h("details", { class: "sources" },
      h("summary", { text: t("sources", { n: m.sources.length }) }),
      h("ol", {}, m.sources.map((s) => h("li", { class: "source" },
        h("span", { class: "doc", text: s.title || s.document, title: s.document }),
        h("span", { class: "score", text: t("score", { score: Number(s.score).toFixed(2) }) }),
        h("p", { class: "snippet", text: s.snippet }))))));
  }
  li.replaceChildren(...parts);
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", { class: "offscreen", readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  button.textContent = t("copied");
  setTimeout(() => { button.textContent = t("copy"); }, 1500);
}

// checkOlder shows "Load older messages" when the REST API has messages
// older than the history frame held (a server may cap history).
async function checkOlder() {
  const oldest = state.conv.oldestVersion();
  ui.loadOlder.hidden = true;
  if (oldest === undefined || !state.room) return;
  const room = state.room.id;
  try {
    const page = await api.messages(room, oldest, 1);
    if (state.room && state.room.id === room) ui.loadOlder.hidden = page.messages.length === 0;
  } catch (e) {
    failed(e);
  }
}

ui.loadOlder.addEventListener("click", async () => {
  const room = state.room.id;
  let page;
  try {
    page = await api.messages(room, state.conv.oldestVersion(), 50);
  } catch (e) {
    return failed(e);
  }
  if (!state.room || state.room.id !== room) return;
  const before = ui.messages.scrollHeight - ui.messages.scrollTop;
  state.conv.prepend(page.messages);
  renderAll();
  ui.messages.scrollTop = ui.messages.scrollHeight - before;
  ui.loadOlder.hidden = page.next_before === null;
});

// ---- notices --------------------------------------------------------------

let noticeTimer = null;

function notice(text, code) {
  ui.notice.textContent = text;
  ui.notice.dataset.code = code || "";
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

function hideNotice() {
  ui.notice.hidden = true;
  ui.notice.dataset.code = "";
}

// ---- sending --------------------------------------------------------------

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function messageFrame(p) {
  return { type: "message", message: p.text, client_id: p.clientId };
}

function send() {
  const text = ui.input.value;
  if (!text.trim() || state.pending || !state.socket) return;
  if (new TextEncoder().encode(text).length > MAX_MESSAGE_BYTES) return notice(t("err.too_large"), "too_large");
  state.pending = { clientId: uuid(), text };
  if (!state.socket.send(messageFrame(state.pending))) notice(t("notSentYet"), "not_sent");
  updateComposer();
}

function retry(answerId) {
  const order = state.conv.order;
  for (let k = order.indexOf(answerId) - 1; k >= 0; k--) {
    const m = state.conv.byId.get(order[k]);
    if (m.role === "user") {
      ui.input.value = m.text;
      send();
      return;
    }
  }
}

function updateComposer() {
  ui.stop.hidden = !state.conv.streaming();
  ui.send.disabled = !!state.pending;
}

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});

ui.stop.addEventListener("click", () => {
  if (state.socket) state.socket.send({ type: "cancel" });
});

// Enter sends and Shift+Enter is a new line, but an Enter that commits an
// input method's composition (Korean, Japanese, ...) sends nothing:
// browsers mark it isComposing, or keyCode 229 (Safari sends it just after
// compositionend), and we track the composition ourselves as well.
ui.input.addEventListener("compositionstart", () => { state.composing = true; });
ui.input.addEventListener("compositionend", () => { state.composing = false; });
ui.input.addEventListener("blur", () => { state.composing = false; });
ui.input.addEventListener("keydown", (e) => {
  if (e.key !== "Enter" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.isComposing || e.keyCode === 229 || state.composing) return;
  e.preventDefault();
  send();
});

// ---- start ------------------------------------------------------------------

translate(document);
if (state.token) showApp();
else showSignIn("");
