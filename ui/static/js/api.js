// The HTTP API as the page uses it. Paths are relative, so the UI also works
// behind a reverse proxy that mounts the daemon under a prefix.
//
// A daemon with --auth-token-file wants "Authorization: Bearer" on every API
// call. The page cannot send a header with its own load, so the static
// shell is public and the token lives in this tab's session storage: set
// from a "#token=..." fragment (never sent to servers or logged, and removed
// from the address bar at once) or typed in when the API answers 401.

const tokenKey = "ember-token";

export class ApiError extends Error {
  constructor(status, message, parameter, retryAfter) {
    super(message);
    this.status = status;
    this.parameter = parameter || "";
    this.retryAfter = retryAfter || 0;
  }
}

export function takeTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(tokenKey, decodeURIComponent(m[1]));
  history.replaceState(history.state, "", location.pathname + location.search);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

function headers() {
  const t = sessionStorage.getItem(tokenKey);
  return t ? { Authorization: "Bearer " + t } : {};
}

export function apiURL(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return "api/v1/" + path + (s ? "?" + s : "");
}

// answer is the response to url: early.js's, if it asked for the same,
// or a new request.
function answer(url, signal) {
  const early = window.__emberEarly;
  const prefetched = early && early.prefetched.get(url);
  if (!prefetched) return fetch(url, { headers: headers(), signal });
  early.prefetched.delete(url);
  early.used.push(url);
  if (!signal) return prefetched;
  // It was started without this signal: abort the wait instead.
  return Promise.race([prefetched, new Promise((_, reject) => {
    const abort = () => reject(new DOMException("The request was aborted", "AbortError"));
    if (signal.aborted) abort(); else signal.addEventListener("abort", abort, { once: true });
  })]);
}

async function request(path, params, signal) {
  let res;
  try {
    res = await answer(apiURL(path, params), signal);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Cannot reach the daemon at " + location.host + ": is it running?");
  }
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch { /* not JSON: a proxy's page */ }
    throw new ApiError(res.status, body.error || res.status + " " + res.statusText, body.parameter,
      parseInt(res.headers.get("Retry-After") || "0", 10));
  }
  return res;
}

export async function getJSON(path, params, signal) {
  return (await request(path, params, signal)).json();
}

export async function getBlob(path, params, signal) {
  const res = await request(path, params, signal);
  const name = (res.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  return { blob: await res.blob(), name: name ? name[1] : "ember.pb.gz" };
}
