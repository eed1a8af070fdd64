// The tables beside the flame graph: top functions, the diff's frames, and
// the sandwich's function list, rendered from the page's data and state.

import { formatValue, formatCount, formatShare, formatSignedShare, formatTime, escapeHTML } from "./format.js";
import { functionKey } from "./tree.js";

const $ = (id) => document.getElementById(id);

// functionRows is the API's table of functions, exact over the whole
// profile whatever the node budget; without it (an older daemon), the
// sums over the nodes shown.
let functionMemo = { fg: null, rows: [], count: 0 };
function functionRows(data) {
  const fg = data.fg, f = fg.functions;
  if (functionMemo.fg === fg) return functionMemo;
  let rows, count;
  if (f && f.name) {
    rows = f.name.map((s, i) => {
      const name = fg.strings[s], binary = f.binary ? fg.strings[f.binary[i]] : "";
      return { key: functionKey(name, binary), name, binary, self: f.self[i], total: f.total[i] };
    });
    count = f.count;
  } else {
    rows = data.tree.functions().filter((r) => r.name !== "(other)");
    count = rows.length;
  }
  functionMemo = { fg, rows, count, exact: !!(f && f.name) };
  return functionMemo;
}

// renderTable fills the top table from the page's data and state and
// returns the rows shown, which clicks address by index.
export function renderTable(data, state, hook) {
  const t = data.tree, all = t.grandTotal || 1;
  const fns = functionRows(data);
  let rows = fns.rows.slice(); // sorted in place below
  if (state.tfilter) {
    const f = state.tfilter.toLowerCase();
    rows = rows.filter((r) => r.key.toLowerCase().includes(f));
  }
  const desc = state.sort.startsWith("-"), col = state.sort.replace(/^-/, "");
  const sign = desc ? -1 : 1;
  rows.sort((a, b) => sign * (col === "name" ? a.key.localeCompare(b.key) : a[col] - b[col]) || b.total - a.total);
  for (const th of document.querySelectorAll("#top-table th")) {
    const b = th.querySelector("[data-sort]");
    if (b) th.setAttribute("aria-sort", b.dataset.sort === col ? (desc ? "descending" : "ascending") : "none");
  }
  $("table-filter").value = state.tfilter;
  $("table-count").textContent = `${formatCount(rows.length)} functions` +
    (!fns.exact ? (data.fg.pruned.nodes ? " (of the nodes shown)" : "") : fns.rows.length < fns.count ? ` (the largest of ${formatCount(fns.count)})` : "");
  const tableRows = rows.slice(0, 500);
  const maxSelf = Math.max(...tableRows.map((r) => r.self), 1);
  // A row is a function in one binary: main of two programs is two rows.
  $("top-table").tBodies[0].innerHTML = tableRows.map((r, i) => `<tr tabindex="0" data-i="${i}" aria-selected="${r.key === state.fn}">
    <td class="fn" title="${escapeHTML(r.name + (r.binary ? " in " + r.binary : ""))}">${escapeHTML(r.name)}` +
    (r.binary ? `<span class="bin">${escapeHTML(r.binary.slice(r.binary.lastIndexOf("/") + 1))}</span>` : "") +
    `<span class="bar-cell" data-w="${(r.self / maxSelf).toFixed(3)}"></span></td>
    <td class="num" title="${formatValue(r.self, t.unit)}">${formatShare(r.self / all)}</td>
    <td class="num" title="${formatValue(r.total, t.unit)}">${formatShare(r.total / all)}</td>
    <td><button type="button" data-sandwich="${i}" title="Callers and callees">sandwich</button></td></tr>`).join("");
  for (const bar of document.querySelectorAll("#top-table .bar-cell")) bar.style.width = (+bar.dataset.w * 100) + "%";
  hook.table = tableRows.map((r) => ({ name: r.name, binary: r.binary, key: r.key, self: r.self, total: r.total }));
  return tableRows;
}

// renderDiff fills the diff's table and totals; tree is the merged
// tree drawn, if any.
export function renderDiff(data, state, tree, hook) {
  const d = data.diff;
  if (!d) return;
  $("base-from").value = state.base_from;
  $("base-to").value = state.base_to;
  $("base-query").value = state.base_query;
  $("diff-totals").textContent = `base ${formatTime(d.base_from, true)} – ${formatTime(d.base_to, true)}: ` +
    (d.base_total ? `${formatValue(d.base_total, d.unit)}; shares of each range's total` +
      (tree ? `, full colour at ${formatSignedShare(tree.colourScale).slice(1)} (the largest: ${formatSignedShare(tree.maxAbs).slice(1)}); widths are the mean of both` : "") :
      "no samples, nothing to compare with: choose another base");
  const changed = d.frames.filter((f) => Math.abs(f.self_diff) >= 5e-5 || Math.abs(f.total_diff) >= 5e-5);
  $("diff-table").tBodies[0].innerHTML = changed.map((f) => `<tr tabindex="0" data-name="${escapeHTML(f.name)}">
    <td class="fn" title="${escapeHTML(f.name)}">${escapeHTML(f.name)}</td>
    <td class="num">${formatShare(f.base_self_share)}</td><td class="num">${formatShare(f.self_share)}</td>
    <td class="num ${f.self_diff > 0 ? "up" : f.self_diff < 0 ? "down" : ""}">${formatSignedShare(f.self_diff)}</td></tr>`).join("");
  hook.diff = changed.map((f) => ({ name: f.name, self_diff: f.self_diff }));
}

// renderSandwich draws the callers and callees of state.fn.
export function renderSandwich(data, state, callers, callees, hook) {
  const t = data.tree;
  const names = t.functions().sort((a, b) => b.total - a.total).slice(0, 300);
  $("fn-names").innerHTML = names.map((r) => `<option value="${escapeHTML(r.key)}">`).join("");
  const fn = state.fn || (names[0] && names[0].key) || "";
  $("sandwich-fn").value = fn;
  // An older link names the function alone: take its largest binary.
  const key = names.some((r) => r.key === fn) || fn.includes(" @") ? fn : (names.find((r) => r.name === fn) || { key: fn }).key;
  const sw = key ? t.sandwich(key) : null;
  if (!sw) {
    $("sandwich-info").textContent = fn ? "no such function in this range" : "";
    callers.setTree(null); callees.setTree(null);
    hook.sandwich = null;
    return;
  }
  const all = t.grandTotal || 1;
  $("sandwich-info").textContent = `total ${formatShare(sw.callees.grandTotal / all)}, self ${formatShare(sw.callees.self[0] / all)}`;
  callers.setTree(sw.callers);
  callees.setTree(sw.callees);
  hook.sandwich = { fn, key, callers: sw.callers.n, callees: sw.callees.n, total: sw.callees.grandTotal };
}

