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

// The daemon answers two expensive queries at once and turns the rest
// away with 429: the page never has more than two in flight (the early
// flame-graph request counts as one) and queues the others in order.
const expensive = new Set(["flamegraph", "series", "diff", "profile"]);
const maxInFlight = 2;
let inFlight = 0;
const waiting = [];
// early.js's request holds a slot until it is answered.
for (const p of (window.__emberEarly ? window.__emberEarly.prefetched.values() : [])) {
  inFlight++;
  p.then(release, release);
}

function acquire(signal) {
  if (inFlight < maxInFlight) { inFlight++; return Promise.resolve(); }
  return new Promise((resolve, reject) => {
    const w = { resolve };
    waiting.push(w);
    if (signal) signal.addEventListener("abort", () => {
      const i = waiting.indexOf(w);
      if (i >= 0) { waiting.splice(i, 1); reject(new DOMException("The request was aborted", "AbortError")); }
    }, { once: true });
  });
}

function release() {
  const next = waiting.shift();
  if (next) next.resolve(); else inFlight--;
}

export const apiStats = { maxInFlight: 0, retried429: 0 };

async function request(path, params, signal) {
  const url = apiURL(path, params);
  const early = window.__emberEarly;
  const isEarly = !!(early && early.prefetched.has(url));
  const bounded = expensive.has(path.split("/")[0]);
  for (let attempt = 0; ; attempt++) {
    // The early request holds a slot of its own (above).
    const slot = bounded && !(isEarly && attempt === 0);
    if (slot) await acquire(signal);
    apiStats.maxInFlight = Math.max(apiStats.maxInFlight, inFlight);
    let res;
    try {
      res = await answer(url, signal);
    } catch (e) {
      if (slot) release();
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "Cannot reach the daemon at " + location.host + ": is it running?");
    }
    if (slot) release();
    // Busy with other clients' queries: wait as it asks, a few times.
    if (res.status === 429 && attempt < 4) {
      apiStats.retried429++;
      const wait = Math.min(parseInt(res.headers.get("Retry-After") || "1", 10) || 1, 10) * 1000 * (attempt + 1);
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (signal && signal.aborted) throw new DOMException("The request was aborted", "AbortError");
      continue;
    }
    return check(res);
  }
}

async function check(res) {
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch { /* not JSON: a proxy's page */ }
    throw new ApiError(res.status, body.error || res.status + " " + res.statusText, body.parameter,
      parseInt(res.headers.get("Retry-After") || "0", 10));
  }
  return res;
}

// getReady is the daemon's /readyz answer (its exporters' state as
// "sinks"), or null when it is not ready or cannot be reached.
export async function getReady() {
  try {
    const res = await fetch("readyz", { headers: headers() });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

export async function getJSON(path, params, signal) {
  return (await request(path, params, signal)).json();
}

// getFlameGraph is /api/v1/flamegraph in its binary form (web/flamebinary.go),
// shaped as the JSON answer is, its node arrays typed: parsing the JSON of
// 100,000 nodes took longer than drawing them.
export async function getFlameGraph(params, signal) {
  const res = await request("flamegraph", { ...params, format: "binary" }, signal);
  return decodeFlameGraph(await res.arrayBuffer());
}

const magic = "EMBERFG1";

export function decodeFlameGraph(buf) {
  const bytes = new Uint8Array(buf);
  if (bytes.length < 12 || String.fromCharCode(...bytes.subarray(0, 8)) !== magic) throw new ApiError(0, "The daemon sent a flame graph this page cannot read");
  const headLen = new DataView(buf).getUint32(8, true);
  const fg = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headLen)));
  const n = fg.node_count;
  let off = 12 + headLen;
  off += (8 - (off % 8)) % 8;
  if (buf.byteLength !== off + 18 * n) throw new ApiError(0, "The daemon sent a flame graph of the wrong length");
  const total = new Float64Array(buf, off, n);
  const frame = new Int32Array(buf, off + 8 * n, n);
  const line = new Int32Array(buf, off + 12 * n, n);
  const depth = new Uint16Array(buf, off + 16 * n, n);
  const fr = fg.frames;
  const parent = new Int32Array(n), name = new Int32Array(n), file = new Int32Array(n), binary = new Int32Array(n);
  const self = Float64Array.from(total);
  // Pre-order: a node's parent is the last node one level up.
  const open = new Int32Array(65537);
  for (let i = 0; i < n; i++) {
    const d = depth[i], f = frame[i];
    open[d] = i;
    const p = d > 0 ? open[d - 1] : -1;
    parent[i] = p;
    if (p >= 0) self[p] -= total[i];
    name[i] = fr.name[f]; file[i] = fr.file[f]; binary[i] = fr.binary[f];
  }
  delete fg.frames;
  fg.nodes = { parent, name, file, line, binary, self, total };
  return fg;
}

export async function getBlob(path, params, signal) {
  const res = await request(path, params, signal);
  const name = (res.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  return { blob: await res.blob(), name: name ? name[1] : "ember.pb.gz" };
}
