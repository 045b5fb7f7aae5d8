// UI text in English and Korean, chosen from the browser's languages.

const en = {
  signIn: "Sign in", signInTitle: "Sign in to Parley", signOut: "Sign out",
  devLoginTitle: "Development login", devLogin: "Dev login", userId: "User id",
  devLoginHint: "This server runs on the public development secret: any user id gets a token.",
  tokenTitle: "Access token", tokenHint: "Paste a JWT (for example from chatctl token --user 42).",
  tokenRejected: "The server did not accept this token: {message}",
  expired: "Your sign-in has expired. Sign in again to continue where you left off.",
  signedInAs: "User {user}",
  rooms: "Rooms", create: "Create", newRoomPlaceholder: "New room title", noRooms: "No rooms yet.",
  pickRoom: "Pick a room or create one.", deleteRoom: "Delete", confirmDelete: "Delete?",
  deleteRoomLabel: "Delete room {title}",
  loadOlder: "Load older messages", send: "Send", stop: "Stop", copy: "Copy", copied: "Copied", retry: "Retry",
  inputPlaceholder: "Ask a question (Enter sends, Shift+Enter for a new line)",
  you: "You", assistant: "Parley",
  "status.streaming": "streaming", "status.complete": "complete", "status.failed": "failed", "status.cancelled": "cancelled",
  "reason.generator_error": "The model or retrieval failed.", "reason.timeout": "The answer took too long.",
  "reason.shutdown": "The server stopped while answering.", "reason.interrupted": "The server restarted while answering.",
  "reason.cancelled": "Stopped.",
  sources: "Sources ({n})", score: "score {score}",
  "conn.idle": "", "conn.connecting": "Connecting…", "conn.live": "Live",
  "conn.reconnecting": "Reconnecting in {s} s…", "conn.offline": "Offline", "conn.expired": "Signed out",
  "err.busy": "An answer is still streaming in this room. Wait for it, or stop it, then send again.",
  "err.rate_limited": "You are sending too fast. Wait a moment, then send again.",
  "err.rate_limited_after": "Too many requests. Try again in {s} s.",
  "err.too_large": "The message is too long (at most 8 KiB).",
  "err.invalid": "The server refused the message: {message}",
  "err.internal": "The server failed ({message}). Try again later.",
  "err.network": "Cannot reach the server.",
  "err.generic": "{message}",
  roomGone: "This room no longer exists.", tooManyConnections: "Too many open connections; retrying shortly.",
  notSentYet: "Not connected: the message will be sent when the connection is back.",
  protocolError: "The connection was closed ({code}): {reason}",
};

const ko = {
  signIn: "로그인", signInTitle: "Parley 로그인", signOut: "로그아웃",
  devLoginTitle: "개발용 로그인", devLogin: "개발용 로그인", userId: "사용자 ID",
  devLoginHint: "이 서버는 공개된 개발용 비밀 키로 실행 중입니다. 어떤 사용자 ID로도 토큰을 받을 수 있습니다.",
  tokenTitle: "액세스 토큰", tokenHint: "JWT를 붙여 넣으세요 (예: chatctl token --user 42).",
  tokenRejected: "서버가 이 토큰을 받아들이지 않았습니다: {message}",
  expired: "로그인이 만료되었습니다. 다시 로그인하면 이어서 볼 수 있습니다.",
  signedInAs: "사용자 {user}",
  rooms: "대화방", create: "만들기", newRoomPlaceholder: "새 대화방 제목", noRooms: "아직 대화방이 없습니다.",
  pickRoom: "대화방을 고르거나 새로 만드세요.", deleteRoom: "삭제", confirmDelete: "삭제할까요?",
  deleteRoomLabel: "{title} 대화방 삭제",
  loadOlder: "이전 메시지 불러오기", send: "보내기", stop: "중지", copy: "복사", copied: "복사됨", retry: "다시 시도",
  inputPlaceholder: "질문을 입력하세요 (Enter로 보내기, Shift+Enter로 줄바꿈)",
  you: "나", assistant: "Parley",
  "status.streaming": "답변 중", "status.complete": "완료", "status.failed": "실패", "status.cancelled": "중지됨",
  "reason.generator_error": "모델 또는 검색이 실패했습니다.", "reason.timeout": "답변 시간이 초과되었습니다.",
  "reason.shutdown": "답변 중에 서버가 멈췄습니다.", "reason.interrupted": "답변 중에 서버가 다시 시작되었습니다.",
  "reason.cancelled": "중지되었습니다.",
  sources: "출처 ({n})", score: "점수 {score}",
  "conn.idle": "", "conn.connecting": "연결 중…", "conn.live": "연결됨",
  "conn.reconnecting": "{s}초 후 다시 연결…", "conn.offline": "오프라인", "conn.expired": "로그아웃됨",
  "err.busy": "이 대화방에서 아직 답변이 진행 중입니다. 끝나거나 중지한 뒤 다시 보내세요.",
  "err.rate_limited": "너무 빠르게 보내고 있습니다. 잠시 후 다시 보내세요.",
  "err.rate_limited_after": "요청이 너무 많습니다. {s}초 후 다시 시도하세요.",
  "err.too_large": "메시지가 너무 깁니다 (최대 8 KiB).",
  "err.invalid": "서버가 메시지를 거부했습니다: {message}",
  "err.internal": "서버 오류입니다 ({message}). 나중에 다시 시도하세요.",
  "err.network": "서버에 연결할 수 없습니다.",
  "err.generic": "{message}",
  roomGone: "이 대화방은 더 이상 없습니다.", tooManyConnections: "열린 연결이 너무 많습니다. 곧 다시 시도합니다.",
  notSentYet: "연결되어 있지 않습니다. 연결이 돌아오면 메시지를 보냅니다.",
  protocolError: "연결이 닫혔습니다 ({code}): {reason}",
};

const catalogs = { en, ko };

// pickLanguage returns "ko" when Korean comes before English in the
// browser's preferred languages, else "en".
export function pickLanguage(languages) {
  for (const l of languages || []) {
    const base = String(l).toLowerCase().split("-")[0];
    if (base in catalogs) return base;
  }
  return "en";
}

export const lang = pickLanguage(navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language]);

// t returns the text for key in the page's language, with {name} replaced
// by vars[name].
export function t(key, vars = {}) {
  const s = catalogs[lang][key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

// translate fills the static page: data-i18n sets an element's text,
// data-i18n-placeholder its placeholder.
export function translate(root) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}
