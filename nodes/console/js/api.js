// The JSON API of this node, with the optional bearer token. The token lives in this
// tab's sessionStorage and travels only in the Authorization header.

const TOKEN_KEY = "marie.token";

/** A refused or failed API call, with the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let waitingForToken = null;

/** Shows the token panel and resolves once a token was entered. */
function askForToken(refused) {
  if (waitingForToken) return waitingForToken;
  const panel = document.getElementById("token-panel");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  const why = document.getElementById("token-why");
  why.textContent = refused
    ? "The token was refused (401): check it and enter it again."
    : "The HTTP API refused the request (401): it is set up with http.auth_token. Enter the token.";
  panel.hidden = false;
  input.value = "";
  input.focus();
  waitingForToken = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      panel.hidden = true;
      input.value = "";
      form.onsubmit = null;
      waitingForToken = null;
      resolve();
    };
  });
  return waitingForToken;
}

function headers(extra) {
  const h = new Headers(extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.set("Authorization", `Bearer ${token}`);
  return h;
}

/** Fetches `path`; asks for the token and retries when the API answers 401. */
export async function send(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401) return response;
    const hadToken = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    setLive(hadToken ? "refused: the token is wrong" : "refused: this node wants a token", true);
    await askForToken(hadToken);
  }
}

/** The `result` of a JSON answer, or an ApiError. */
export async function api(path, options = {}) {
  const response = await send(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, "bad_answer", `the node answered ${response.status} without JSON`);
  }
  if (!response.ok || body.status !== "OK") {
    const error = body.error || {};
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return body.result;
}

/** Says in the header how the last call went. */
export function setLive(text, error = false) {
  const live = document.getElementById("live");
  if (live.textContent !== text) live.textContent = text;
  live.classList.toggle("error", error);
}
