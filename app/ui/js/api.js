// Calls to the server's API with the session token; errors carry the API's own message.

const TOKEN = "token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN, value);
    else sessionStorage.removeItem(TOKEN);
  },
};

async function failure(response) {
  let body = {};
  try { body = await response.json(); } catch { /* not JSON: fall back to the status */ }
  const message = body.error || `${response.status} ${response.statusText || "error"}`;
  const error = new ApiError(response.status, body.code || "http_error", message);
  if (response.status === 401 && session.token) {
    session.token = null;
    window.dispatchEvent(new CustomEvent("signed-out", { detail: message }));
  }
  return error;
}

/** fetch() an API path; JSON in and out (or a Blob with {blob: true}). Throws ApiError. */
export async function api(path, { method = "GET", body, blob = false } = {}) {
  const headers = { Accept: blob ? "*/*" : "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached; is it running?");
  }
  if (!response.ok) throw await failure(response);
  return blob ? response.blob() : response.json();
}

export const enc = encodeURIComponent;
