// The page: its state lives in the URL's query string (so a link reproduces
// the view), data comes from the API, and each view renders from a Tree.

import { ApiError, getJSON, getFlameGraph, getBlob, setToken, takeTokenFromFragment, apiStats, getReady } from "./api.js";
import { Tree, diffTree, splitKey, filterFrames, setSiblingOrder } from "./tree.js";
import { FlameView, renderKinds } from "./flame.js";
import { Timeline, totalOf } from "./timeline.js";
import { LabelExplorer, setSelect, addOptions } from "./labels.js";
import { renderTable, renderDiff, renderSandwich } from "./tables.js";
import { SourceView } from "./source.js";
import { SelectorInput, quoteValue, parseMatchers, formatSelector } from "./selector.js";
import { formatValue, formatCount, formatShare, formatTime, isoSeconds, escapeHTML, seriesColour, seriesStep } from "./format.js";

const $ = (id) => document.getElementById(id);

// defaults are the state an empty URL means; only differences are written.
// early.js holds them: it asks for the first flame graph before this runs.
const defaults = window.__emberEarly.defaults;
// The flame graph's: "group" is the timeline's alone, and does not reload it.
const dataKeys = ["from", "to", "query", "nodes", "by", "other", "type"];
const diffKeys = ["base_from", "base_to", "base_query"];

let state = readState();
let data = { tree: null, fg: null, base: null, diff: null, total: null, grouped: null };
let loadedKey = "", diffKey = "";
let controller = null;
const hook = { ready: false, loads: 0, seriesLoads: 0, flameQueries: [], errors: [], early: window.__emberEarly };
window.__ember = hook; // for the browser tests and the curious

function readState() {
  const q = new URLSearchParams(location.search), s = { ...defaults };
  for (const k of Object.keys(defaults)) if (q.has(k)) s[k] = q.get(k);
  return s;
}

function writeState(push) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== defaults[k]) q.set(k, v);
  const url = location.pathname + (q.toString() ? "?" + q : "");
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}

// update changes state and does the least work that follows from it.
function update(changes, { push = true } = {}) {
  state = { ...state, ...changes };
  writeState(push);
  load(); // renders at once when no data is missing
}

// ---- loading

function key(keys) { return keys.map((k) => state[k]).join("\u0001"); }
const seriesKeys = ["from", "to", "query", "group", "type"];
let seriesKey = "", seriesController = null;

async function load({ force = false } = {}) {
  syncControls(); // the range and filter show what is asked, answered or not
  const wantSeries = key(seriesKeys);
  if (force || wantSeries !== seriesKey) loadSeries();
  const want = key(dataKeys);
  const wantDiff = state.view === "diff" ? want + key(diffKeys) : "";
  if (!force && want === loadedKey && (!wantDiff || wantDiff === diffKey)) { render(); return; }
  if (controller) controller.abort();
  controller = new AbortController();
  const signal = controller.signal;
  hook.ready = false;
  // With a view on screen, a banner says what is loading; without, the panel.
  const slow = setTimeout(() => {
    if (data.tree) showBanner("loading", `Loading profiles ${describeRange()}…`);
    else showStatus("loading", "Loading…", `Profiles ${describeRange()}${state.query ? " matching " + state.query : ""}.`);
  }, 150);
  const range = { from: state.from, to: state.to, query: state.query };
  try {
    const reuse = !force && want === loadedKey;
    // max_other: the daemon grows the budget until (other) is at most 10%
    // (&other= in the address changes the share; 0 keeps the budget fixed).
    const fgParams = { ...range, max_nodes: state.nodes, group_by: groupBy(), max_other: state.other, type: state.type };
    let fgJob = data.fg;
    if (!reuse) {
      hook.flameQueries.push(fgParams);
      fgJob = getFlameGraph(fgParams, signal);
    }
    const diffJob = wantDiff ? getJSON("diff", { ...range, ...baseParams(), limit: 200, sample_type: state.type }, signal) : null;
    const [fg, diff] = await Promise.all([fgJob, diffJob]);
    performance.mark("ember:flamegraph-received");
    let baseFG = null;
    if (wantDiff) {
      // The base's flame graph over exactly the range the diff resolved.
      baseFG = await getFlameGraph({ from: diff.base_from, to: diff.base_to,
        query: state.base_query || state.query, max_nodes: state.nodes, group_by: groupBy(), max_other: state.other, type: state.type }, signal);
    }
    clearTimeout(slow);
    if (!reuse) {
      data.fg = fg;
      data.tree = Tree.fromAPI(fg);
      performance.mark("ember:tree-built");
      selector.forget();
    }
    if (wantDiff) { data.base = Tree.fromAPI(baseFG); data.diff = diff; diffKey = wantDiff; }
    loadedKey = want;
    recovered();
    // The daemon read only the newest part of the range: in time (a busy
    // host; r asks again) or within its bound on distinct stacks (a
    // narrower range or selector shows the rest). Draw it and say which.
    if (data.fg.partial) {
      const span = `${formatTime(data.fg.covered_from, true)} to ${formatTime(data.fg.to, true)}`;
      showBanner("warn", data.fg.partial_reason === "stacks"
        ? `Partial: the range holds more distinct stacks than one graph may take; this shows ${span}. Narrow the range or the selector for the rest.`
        : `Partial: the daemon read only ${span} of the range in time. Press r to ask again.`);
    }
    hook.loads++;
    hideStatus();
    render();
    performance.mark("ember:rendered");
    // Nothing drawn (no samples, another view): the first view is done too.
    if (!flame.pending) firstViewDone();
  } catch (e) {
    clearTimeout(slow);
    if (e.name === "AbortError") return;
    tokenWanted = e instanceof ApiError && e.status === 401;
    if (!tokenWanted) firstViewDone();
    showError(e);
  }
}

// loadSeries fetches and draws the timeline in one request: grouped, the
// total is the sum of the groups and "other". It runs beside the flame
// graph's (api.js keeps the page within the daemon's two queries), so
// the timeline follows a new range at once.
async function loadSeries() {
  if (seriesController) seriesController.abort();
  seriesController = new AbortController();
  const signal = seriesController.signal;
  seriesKey = key(seriesKeys);
  const params = { from: state.from, to: state.to, query: state.query, step: seriesStep(state.from, state.to), type: state.type };
  timeline.unit = state.type === "offcpu" ? "threads" : "cores";
  timeline.set(null, null); // not the old range's while the new one loads
  $("timeline-readout").textContent = state.type === "offcpu" ? "Loading time off the CPU…" : "Loading CPU use…";
  try {
    await firstView;
    if (signal.aborted) return;
    let total = null, grouped = null;
    if (state.group) {
      try {
        grouped = await getJSON("series", { ...params, group_by: state.group, limit: 8 }, signal);
        total = totalOf(grouped);
      } catch (e) {
        // No sample of the range has the label (an empty range): the total.
        if (!(e instanceof ApiError && e.status === 400 && e.parameter === "group_by")) throw e;
      }
    }
    if (!total) total = await getJSON("series", params, signal);
    data.total = total;
    data.grouped = grouped;
    timeline.set(total, grouped);
    renderLegend();
    $("timeline-readout").textContent = "";
    hook.seriesLoads = (hook.seriesLoads || 0) + 1;
  } catch (e) {
    if (e.name === "AbortError") return;
    seriesKey = ""; // try again with the next load
    timeline.set(null, null);
    $("legend").innerHTML = "";
    $("timeline-readout").textContent = "CPU series unavailable: " + e.message;
  }
}

// firstView settles when the first flame graph is drawn, or its load
// ended without one (or is slow): the page's other requests wait for it, so
// that the daemon and the browser give their time to the first view.
let firstViewDone;
const firstView = new Promise((resolve) => { firstViewDone = resolve; });
// A slow first flame graph holds the others back for 2 s at most; one
// that wants a token holds them until it is given (they would want it too).
let tokenWanted = false;
setTimeout(() => { if (!tokenWanted) firstViewDone(); }, 2000);

// groupBy is the flame graph's group_by: "" for none.
function groupBy() { return state.by === "none" ? "" : state.by; }

function baseParams() {
  const p = {};
  if (state.base_from) p.base_from = state.base_from;
  if (state.base_to) p.base_to = state.base_to;
  if (state.base_query) p.base_query = state.base_query;
  return p;
}

function describeRange() {
  if (state.to === "now" && state.from.startsWith("now-")) return "of the last " + state.from.slice(4);
  return `from ${state.from} to ${state.to}`;
}

// ---- the exporters' state, in the top bar

// sinkWords says an exporter's state in a few words.
function sinkWords(k) {
  switch (k.state) {
    case "caught_up": return "up to date";
    case "sending": return `sending, ${k.backlog_intervals} behind`;
    case "retrying": return `retrying${k.last_error_reason ? " (" + k.last_error_reason + ")" : ""}, ${Math.round(k.lag_seconds)} s behind`;
    default: return k.state || "?";
  }
}

// refreshSinks shows where the daemon exports its profiles and whether
// they get there, from /readyz; nothing when it exports nowhere.
async function refreshSinks() {
  const ready = await getReady();
  const el = $("sinks"), sinks = (ready && ready.sinks) || [];
  hook.sinks = sinks;
  el.hidden = !sinks.length;
  if (!sinks.length) return;
  el.innerHTML = "Export: " + sinks.map((k) => `<span class="${k.state === "retrying" ? "sink-warn" : "sink-ok"}">${escapeHTML(k.name)} ${escapeHTML(sinkWords(k))}</span>`).join(" · ");
  el.title = sinks.map((k) => `${k.name} → ${k.target}: ${sinkWords(k)}` +
    (k.last_error ? `; last error ${k.last_error_at || ""}: ${k.last_error}` : "")).join("\n");
}

// ---- status: loading, empty, errors

function showStatus(kind, title, text, html) {
  const el = $("status");
  el.className = "status " + kind;
  el.innerHTML = `<h2>${escapeHTML(title)}</h2><p>${escapeHTML(text)}</p>${html || ""}`;
  el.hidden = false;
  for (const id of ["flame-panel", "table-panel", "diff-panel", "sandwich-panel"]) $(id).hidden = kind !== "loading" ? true : $(id).hidden;
}

function hideStatus() { $("status").hidden = true; }

// showBanner says what went wrong (or is loading) above the view, which
// stays as it was: during an incident the last good graph beats none.
function showBanner(kind, text) {
  const el = $("banner");
  el.className = "banner " + kind;
  el.textContent = text;
  el.hidden = false;
}

// Failures the daemon recovers from by itself (not running, busy, slow)
// are retried, sooner first, until a load succeeds.
let retries = 0, retryTimer = 0;
function retryLater(e, what) {
  const delay = Math.min(15, 2 ** retries) * 1000;
  retries++;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => load({ force: true }), delay);
  const msg = `${what}: ${e.message}. Trying again in ${delay / 1000} s (r to try now).`;
  if (data.tree) showBanner("error", msg + " Showing the last loaded view.");
  else showStatus("error", what, msg);
  hook.retrying = true;
}

function recovered() {
  retries = 0;
  clearTimeout(retryTimer);
  hook.retrying = false;
  $("banner").hidden = true;
}

function showError(e) {
  hook.errors.push(String(e.message));
  if (!(e instanceof ApiError)) { showStatus("error", "Something went wrong", String(e)); return; }
  switch (e.status) {
    case 401:
      showStatus("error", "A token is needed", "This daemon requires a bearer token for its API.",
        '<p><button type="button" id="enter-token">Enter token</button></p>');
      $("enter-token").onclick = askToken;
      askToken();
      return;
    case 429:
      retryLater(e, "The daemon is busy");
      return;
    case 503:
      if (/time limit/.test(e.message)) showStatus("error", "The query was too large", e.message + ".");
      else retryLater(e, "The daemon cannot answer yet");
      return;
    case 414:
      showStatus("error", "The query was too large", e.message);
      return;
    case 400:
      showStatus("error", `The ${e.parameter || "request"} is not valid`, e.message);
      if (e.parameter === "query") $("selector").focus();
      return;
    case 0: case 502: case 504:
      retryLater(e, "The daemon does not answer");
      return;
    default:
      showStatus("error", `The daemon answered ${e.status}`, e.message);
  }
}

function askToken() {
  const d = $("token-dialog");
  if (d.open) return;
  $("token-input").value = "";
  d.showModal();
  d.onclose = () => {
    if (d.returnValue === "ok" && $("token-input").value.trim()) {
      setToken($("token-input").value.trim());
      load({ force: true });
    }
  };
}

// ---- rendering

const flame = new FlameView($("flame"), {
  tooltip: $("tooltip"),
  onFocus: (node) => update({ focus: node > 0 ? flame.tree.pathOf(node).join(";") : "" }),
  onSandwich: (node) => update({ view: "sandwich", fn: flame.tree.keyOf(node) }),
});
// The base range's own graph, beside the range's in the diff's side-by-side mode.
const baseFlame = new FlameView($("flame-base"), { tooltip: $("tooltip"), label: "Flame graph of the base range" });
const callers = new FlameView($("callers"), { tooltip: $("tooltip"), orientation: "flame", label: "Callers of the function" });
const callees = new FlameView($("callees"), { tooltip: $("tooltip"), orientation: "icicle", label: "Callees of the function" });
const timeline = new Timeline($("timeline"), $("brush"), $("timeline-readout"),
  (a, b) => update({ from: isoSeconds(new Date(a)), to: isoSeconds(new Date(b)), focus: "" }), $("timeline-note"));
const selector = new SelectorInput($("selector"), $("suggestions"), $("chips"),
  () => ({ from: state.from, to: state.to }), (sel) => update({ query: sel, focus: "" }));

let diffMemo = {};
const sourceView = new SourceView($("lines-table"), $("lines-info"));
let tableRows = []; // the top table's rows shown, which clicks address by index

// syncControls shows the state in the controls, data or not.
function syncControls() {
  $("from").value = state.from;
  $("to").value = state.to;
  $("group-by").value = state.group;
  $("profile-type").value = state.type;
  setSelect($("flame-by"), state.by);
  if (document.activeElement !== $("selector")) selector.set(state.query);
}

function render() {
  if (!data.tree) return;
  const t = data.tree, v = state.view;
  $("content").className = "content view-" + v;
  for (const b of document.querySelectorAll("[role=tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.view === v));
    b.tabIndex = b.dataset.view === v ? 0 : -1;
  }
  for (const b of document.querySelectorAll("[data-orient]")) b.setAttribute("aria-pressed", String(b.dataset.orient === state.orient));
  for (const b of document.querySelectorAll("[data-order]")) b.setAttribute("aria-pressed", String(b.dataset.order === state.order));
  syncControls();
  $("search").value = state.search;
  $("regex").checked = state.regex === "1";
  $("summary").textContent = summary();

  if (t.grandTotal === 0) {
    const recent = state.to === "now" || Date.now() - Date.parse(data.fg.to) < 120e3;
    showStatus("empty", "No samples", state.query
      ? `No samples match ${state.query} ${describeRange()}.`
      : `No samples were recorded ${describeRange()}.` +
        (recent ? " If the daemon has just started, its first profiles are written after one interval (10 s by default)." : ""));
    hook.ready = true;
    return;
  }
  hideStatus();
  $("flame-panel").hidden = v === "sandwich";
  $("table-panel").hidden = v !== "table";
  $("diff-panel").hidden = v !== "diff";
  $("labels-panel").hidden = v !== "labels";
  $("sandwich-panel").hidden = v !== "sandwich";

  if (v === "sandwich") {
    renderSandwich(data, state, callers, callees, hook);
    if (hook.sandwich) {
      hook.lines = null;
      sourceView.show({ from: state.from, to: state.to, query: state.query }, hook.sandwich.key).then(() => { hook.lines = sourceView.rows; });
    }
  }
  else {
    // The diff view draws both ranges merged; a base without samples has
    // nothing to compare with, so the range alone is drawn.
    if (v === "diff" && data.base && data.base.grandTotal > 0 && (diffMemo.base !== data.base || diffMemo.target !== t)) {
      diffMemo = { base: data.base, target: t, tree: diffTree(t, data.base) };
    }
    // Side by side: each range's own graph, in its own colours, instead
    // of the merged one.
    const sbs = v === "diff" && state.sbs === "1" && data.base && data.base.grandTotal > 0;
    $("side-by-side").checked = state.sbs === "1";
    $("flames").classList.toggle("sbs", !!sbs);
    $("flame-base").hidden = !sbs;
    if (sbs && baseFlame.tree !== data.base) baseFlame.setTree(data.base);
    $("frame-focus").value = state.ffocus;
    $("frame-ignore").value = state.fignore;
    const shown = filterFrames(v === "diff" && !sbs && diffMemo.target === t ? diffMemo.tree : t, state.ffocus, state.fignore);
    setSiblingOrder(state.order);
    for (const tr of [shown, data.base]) tr?.relayout();
    if (flame.tree !== shown) { flame.setTree(shown); renderKinds($("kinds"), flame.tree); }
    if (sbs) baseFlame.schedule();
    flame.setOrientation(state.orient);
    applyFocus();
    applySearch();
    renderBreadcrumb();
    if (v === "table") tableRows = renderTable(data, state, hook);
    if (v === "diff") renderDiff(data, state, diffMemo.tree, hook);
    if (v === "labels") showLabels();
  }
  hook.ready = true;
}

function summary() {
  const fg = data.fg;
  const span = (Date.parse(fg.to) - Date.parse(fg.from)) / 1e9;
  let s = `${formatTime(fg.from, true)} – ${formatTime(fg.to, true)} · ${formatValue(fg.total, fg.unit)} CPU`;
  if (fg.unit === "nanoseconds" && span > 0) s += ` (${(fg.total / 1e9 / (span * 1e6)).toFixed(2)} cores avg)`;
  if (flame.tree && flame.tree !== data.tree && !flame.tree.after && data.tree.grandTotal) {
    s += ` · focus/ignore: ${formatShare(flame.tree.grandTotal / data.tree.grandTotal)} of it shown`;
  }
  if (fg.pruned.nodes) s += ` · ${formatCount(fg.nodes.parent.length)} nodes shown, ${formatShare(fg.pruned.value / (fg.total || 1))} in (other)`;
  return s;
}

function applyFocus() {
  const path = state.focus ? state.focus.split(";") : [];
  flame.setFocus(path.length ? flame.tree.findPath(path) : 0);
}

function searchTest() {
  if (!state.search) return null;
  if (state.regex === "1") {
    try { const re = new RegExp(state.search); return (s) => re.test(s); } catch { return null; }
  }
  const needle = state.search.toLowerCase();
  return (s) => s.toLowerCase().includes(needle);
}

function applySearch() {
  const test = searchTest();
  if (!test && state.fn && state.view !== "sandwich") {
    // A function chosen in the table: its frames, in its binary only.
    const m = flame.tree.matchesKey(state.fn);
    flame.setMarks(m.marks);
    $("search-share").textContent = m.count ? `${splitKey(state.fn)[0]}: ${formatShare(m.share)} of total` : "";
    hook.search = { count: m.count, share: m.share };
    return;
  }
  if (!test) {
    flame.setMarks(null);
    $("search-share").textContent = state.search && state.regex === "1" ? "invalid regular expression" : "";
    hook.search = null;
    return;
  }
  const m = flame.tree.matches(test);
  flame.setMarks(m.marks);
  $("search-share").textContent = !m.count ? "no match" : m.after === undefined
    ? `${formatCount(m.count)} frames, ${formatShare(m.share)} of total`
    : `${formatCount(m.count)} frames, ${formatShare(m.after)} of total, base ${formatShare(m.before)}`;
  hook.search = { count: m.count, share: m.after ?? m.share };
}

function renderBreadcrumb() {
  const t = flame.tree, el = $("breadcrumb");
  const chain = [];
  for (let i = flame.focus; i >= 0; i = t.parent[i]) chain.push(i);
  chain.reverse();
  if (chain.length < 2) { el.innerHTML = ""; return; }
  el.innerHTML = chain.map((i, k) => (k ? "<span>›</span>" : "") +
    `<button type="button" data-node="${i}" title="${escapeHTML(t.nameOf(i))}">${escapeHTML(k ? t.nameOf(i).split("/").pop() : "all")}</button>`).join("");
}

// focusFunction highlights every frame of a function (name and binary)
// and zooms to the smallest part of the graph that holds them all.
function focusFunction(fnKey) {
  const t = data.tree;
  // A function only in pruned nodes is not drawn: highlight without a zoom.
  const node = t.commonAncestor(t.occurrences(fnKey));
  update({ fn: fnKey, search: "", regex: "", focus: node > 0 ? t.pathOf(node).join(";") : "" });
}

function renderLegend() {
  const g = data.grouped;
  if (!g || !g.series.length) { $("legend").innerHTML = ""; return; }
  $("legend").innerHTML = g.series.map((s, i) => {
    const v = s.labels[g.group_by] ?? "";
    return `<button type="button" data-label="${escapeHTML(g.group_by)}" data-value="${escapeHTML(v)}" title="Filter to ${escapeHTML(g.group_by)}=${escapeHTML(v)}">` +
      `<span class="swatch" data-colour="${i}"></span>${escapeHTML(v || "(none)")}</button>`;
  }).join("") + (g.truncated ? `<span class="muted">+${g.truncated} more</span>` : "");
  for (const sw of document.querySelectorAll("#legend .swatch")) sw.style.background = seriesColour("", +sw.dataset.colour);
}

// ---- the label explorer

const explorer = new LabelExplorer($("explore-label"), $("labels-table"), $("labels-info"),
  (label, value) => {
    const ms = parseMatchers(state.query).filter((m) => m.name !== label);
    ms.push({ name: label, op: "=", value: quoteValue(value) });
    update({ query: formatSelector(ms), focus: "", view: "flame" });
  },
  (label) => update({ xlabel: label }, { push: false }));

async function showLabels() {
  let names = [];
  try { names = await selector.labelNames(); } catch { /* the current one remains */ }
  hook.labels = null;
  await explorer.show({ from: state.from, to: state.to, query: state.query, step: seriesStep(state.from, state.to) }, state.xlabel || state.group || "comm", names);
  hook.labels = explorer.rows;
}

// ---- downloads and links

async function download() {
  if (!data.fg) return;
  // What is shown: the range the flame graph was drawn for, in absolute time.
  const params = { from: isoSeconds(new Date(data.fg.from)), to: isoSeconds(new Date(data.fg.to)), query: state.query, type: state.type };
  try {
    const { blob, name } = await getBlob("profile", params);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) { showError(e); }
}

async function copyLink() {
  const q = new URLSearchParams(location.search);
  if (data.fg) { q.set("from", isoSeconds(new Date(data.fg.from))); q.set("to", isoSeconds(new Date(data.fg.to))); }
  const url = location.origin + location.pathname + "?" + q;
  try { await navigator.clipboard.writeText(url); $("copy-link").textContent = "Copied"; }
  catch {
    // No clipboard (an insecure origin, or denied): the address bar has it.
    history.replaceState(null, "", url);
    $("copy-link").textContent = "In the address bar";
  }
  setTimeout(() => { $("copy-link").textContent = "Copy link"; }, 1500);
}

// ---- theme

const themes = ["auto", "light", "dark"];
function applyTheme(name) {
  if (name === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = name;
  $("theme").textContent = "Theme: " + name;
  localStorage.setItem("ember-theme", name);
  for (const v of [flame, baseFlame, callers, callees]) v.setTheme();
  renderKinds($("kinds"), flame.tree);
  timeline.draw();
}

// ---- events

function shiftRange(dir) {
  if (!data.fg) return;
  const from = Date.parse(data.fg.from), to = Date.parse(data.fg.to), len = to - from;
  if (dir === 0) update({ from: isoSeconds(new Date(from - len / 2)), to: isoSeconds(new Date(Math.min(to + len / 2, Date.now()))) });
  else update({ from: isoSeconds(new Date(from + dir * len)), to: isoSeconds(new Date(to + dir * len)) });
}

function bind() {
  for (const b of document.querySelectorAll("[data-range]")) b.onclick = () => update({ from: "now-" + b.dataset.range, to: "now", focus: "" });
  $("custom-range").onsubmit = (e) => { e.preventDefault(); update({ from: $("from").value.trim() || "now-1h", to: $("to").value.trim() || "now" }); };
  $("refresh").onclick = () => load({ force: true });
  $("download").onclick = download;
  $("copy-link").onclick = copyLink;
  $("theme").onclick = () => applyTheme(themes[(themes.indexOf(localStorage.getItem("ember-theme") || "auto") + 1) % 3]);
  $("help-button").onclick = () => $("help").showModal();
  $("group-by").onchange = () => update({ group: $("group-by").value });
  // CPU time or time off the CPU, for the flame graph, tables and timeline.
  $("profile-type").onchange = () => update({ type: $("profile-type").value, focus: "" });
  $("flame-by").onchange = () => update({ by: $("flame-by").value, focus: "" });
  $("flame-by").onfocus = () => selector.labelNames().then((names) => addOptions($("flame-by"), names), () => {});
  for (const b of document.querySelectorAll("[role=tab]")) {
    b.onclick = () => update({ view: b.dataset.view });
    b.onkeydown = (e) => {
      const tabs = [...document.querySelectorAll("[role=tab]")], i = tabs.indexOf(b);
      const j = e.key === "ArrowRight" ? (i + 1) % tabs.length : e.key === "ArrowLeft" ? (i + tabs.length - 1) % tabs.length : -1;
      if (j >= 0) { tabs[j].focus(); tabs[j].click(); }
    };
  }
  for (const b of document.querySelectorAll("[data-orient]")) b.onclick = () => update({ orient: b.dataset.orient }, { push: false });
  for (const b of document.querySelectorAll("[data-order]")) b.onclick = () => update({ order: b.dataset.order }, { push: false });
  $("search").oninput = () => update({ search: $("search").value, fn: "" }, { push: false });
  $("side-by-side").onchange = () => update({ sbs: $("side-by-side").checked ? "1" : "" }, { push: false });
  $("frame-focus").onchange = () => update({ ffocus: $("frame-focus").value, focus: "" });
  $("frame-ignore").onchange = () => update({ fignore: $("frame-ignore").value, focus: "" });
  $("regex").onchange = () => update({ regex: $("regex").checked ? "1" : "" }, { push: false });
  $("breadcrumb").onclick = (e) => {
    const b = e.target.closest("[data-node]");
    if (b) { const n = +b.dataset.node; update({ focus: n > 0 ? flame.tree.pathOf(n).join(";") : "" }); }
  };
  $("table-filter").oninput = () => update({ tfilter: $("table-filter").value }, { push: false });
  $("top-table").tHead.onclick = (e) => {
    const b = e.target.closest("[data-sort]");
    if (!b) return;
    const col = b.dataset.sort, cur = state.sort.replace(/^-/, "");
    const desc = cur === col ? !state.sort.startsWith("-") : col !== "name";
    update({ sort: (desc ? "-" : "") + col }, { push: false });
  };
  const tbody = $("top-table").tBodies[0];
  tbody.onclick = (e) => {
    const sw = e.target.closest("[data-sandwich]");
    if (sw) { update({ view: "sandwich", fn: tableRows[+sw.dataset.sandwich].key }); return; }
    const tr = e.target.closest("tr");
    if (tr) focusFunction(tableRows[+tr.dataset.i].key);
  };
  tbody.onkeydown = (e) => {
    const tr = e.target.closest("tr");
    if (!tr) return;
    if (e.key === "Enter") focusFunction(tableRows[+tr.dataset.i].key);
    else if (e.key === "s") update({ view: "sandwich", fn: tableRows[+tr.dataset.i].key });
    else if (e.key === "ArrowDown") tr.nextElementSibling?.focus();
    else if (e.key === "ArrowUp") tr.previousElementSibling?.focus();
    else return;
    e.preventDefault();
  };
  $("diff-table").tBodies[0].onclick = (e) => {
    const tr = e.target.closest("tr");
    if (tr) update({ search: "^" + tr.dataset.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$", regex: "1" }, { push: false });
  };
  $("diff-form").onsubmit = (e) => {
    e.preventDefault();
    update({ base_from: $("base-from").value.trim(), base_to: $("base-to").value.trim(), base_query: $("base-query").value.trim() });
  };
  $("sandwich-fn").onchange = () => update({ fn: $("sandwich-fn").value });
  $("legend").onclick = (e) => {
    const b = e.target.closest("[data-label]");
    if (!b) return;
    const ms = parseMatchers(state.query).filter((m) => m.name !== b.dataset.label);
    ms.push({ name: b.dataset.label, op: "=", value: quoteValue(b.dataset.value) });
    update({ query: formatSelector(ms), focus: "" });
  };
  window.addEventListener("popstate", () => { state = readState(); load(); });
  window.addEventListener("hashchange", () => { if (location.hash.includes("token=")) { takeTokenFromFragment(); load({ force: true }); } });
  window.addEventListener("keydown", (e) => {
    const typing = e.target.closest("input, textarea, select, dialog");
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const views = { 1: "flame", 2: "table", 3: "sandwich", 4: "diff", 5: "labels" };
    if (views[e.key]) update({ view: views[e.key] });
    else if (e.key === "/") { $("search").focus(); e.preventDefault(); }
    else if (e.key === "f") { $("selector").focus(); e.preventDefault(); }
    else if (e.key === "o") update({ orient: state.orient === "flame" ? "icicle" : "flame" }, { push: false });
    else if (e.key === "n") update({ order: state.order === "name" ? "weight" : "name" }, { push: false });
    else if (e.key === "r") load({ force: true });
    else if (e.key === "?") $("help").showModal();
    else if (e.key === "[") shiftRange(-1);
    else if (e.key === "]") shiftRange(1);
    else if (e.key === "-") shiftRange(0);
    else if (e.key === "Escape" || e.key === "Backspace") {
      if (state.search) update({ search: "", fn: "" }, { push: false });
      else if (state.focus) update({ focus: state.focus.split(";").slice(0, -1).join(";") });
    }
  });
  $("search").onkeydown = (e) => { if (e.key === "Escape") { update({ search: "" }, { push: false }); $("search").blur(); } };
}

performance.mark("ember:start");
takeTokenFromFragment();
bind();
// When the first flame graph was on screen, in ms since navigation began.
$("flame").addEventListener("flamedrawn", () => { hook.firstDrawAt ??= performance.now(); firstViewDone(); });
applyTheme(localStorage.getItem("ember-theme") || "auto");
hook.state = () => ({ ...state });
hook.flame = flame;
hook.callers = callers;
hook.baseFlame = baseFlame;
hook.callees = callees;
hook.timeline = timeline;
hook.api = apiStats;
hook.tree = () => data.tree;
load();
firstView.then(refreshSinks);
setInterval(refreshSinks, 30e3);
hook.refreshSinks = refreshSinks;
