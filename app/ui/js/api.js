// Calls to the server's API. The browser signs in with an HttpOnly session cookie (no
// script can read it); a change also sends the session's CSRF token, kept in memory only.
// Errors carry the API's own message.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = { csrf: null, user: null };

async function failure(response) {
  let body = {};
  try { body = await response.json(); } catch { /* not JSON: fall back to the status */ }
  const message = body.error || `${response.status} ${response.statusText || "error"}`;
  const error = new ApiError(response.status, body.code || "http_error", message);
  if (response.status === 401 && session.user) {
    window.dispatchEvent(new CustomEvent("signed-out", { detail: message }));
  }
  return error;
}

/** fetch() an API path; JSON in and out (or a Blob with {blob: true}). Throws ApiError. */
export async function api(path, { method = "GET", body, blob = false } = {}) {
  const headers = { Accept: blob ? "*/*" : "application/json" };
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached; is it running?");
  }
  if (!response.ok) throw await failure(response);
  return blob ? response.blob() : response.json();
}

/** Run `work` on each item, `limit` at a time; the outcome of each, in order. */
export async function each(items, work, limit = 6) {
  const outcomes = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      try { outcomes[i] = { ok: true, value: await work(items[i]) }; }
      catch (error) { outcomes[i] = { ok: false, error }; }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return outcomes;
}

/**
 * Follow a server-sent stream: `handlers` by event name. Returns a function that closes it.
 * EventSource reconnects by itself; the session cookie goes with it.
 */
export function follow(path, handlers) {
  const source = new EventSource(path);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(event.data ? safeJson(event.data) : null, event));
  }
  return () => source.close();
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return null; }
}

export const enc = encodeURIComponent;
