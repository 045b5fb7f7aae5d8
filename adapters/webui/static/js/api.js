// The REST API (docs/protocol.md §10), as the page uses it.

// ApiError is a failed request: status 0 when the server could not be
// reached, code the error body's code ("network" then), retryAfter the
// seconds of a Retry-After header (0 without one).
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Api calls the REST API with the token getToken returns.
export class Api {
  constructor(getToken) {
    this.getToken = getToken;
  }

  async request(method, path, body) {
    const headers = {};
    const token = this.getToken();
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", String(e && e.message ? e.message : e));
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      // not JSON: a proxy's error page, say
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const retry = parseInt(res.headers.get("Retry-After") || "0", 10) || 0;
      throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText || "HTTP " + res.status, retry);
    }
    return data;
  }

  rooms() { return this.request("GET", "/api/rooms").then((d) => d.rooms); }
  createRoom(title) { return this.request("POST", "/api/rooms", { title }); }
  deleteRoom(id) { return this.request("DELETE", "/api/rooms/" + id); }
  room(id) { return this.request("GET", "/api/rooms/" + id); }
  ticket(id) { return this.request("POST", "/api/rooms/" + id + "/ticket"); }
  messages(id, before, limit) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) q.set("before", String(before));
    return this.request("GET", "/api/rooms/" + id + "/messages?" + q);
  }
  devToken(userId) { return this.request("POST", "/api/dev/token", { user_id: userId }); }
}

// tokenClaims returns a JWT's claims, unverified (the server verifies), or
// null when it is not a JWT.
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part + "=".repeat((4 - (part.length % 4)) % 4)), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
