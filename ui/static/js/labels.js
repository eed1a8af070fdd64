// LabelExplorer lists the values of one label over the range with each
// value's share of the CPU, its mean and its peak in cores: which process,
// container or exe is busy, before the flame graph says why. A row click
// filters to that value (onFilter(label, value)).

import { getJSON, ApiError } from "./api.js";
import { escapeHTML, formatShare } from "./format.js";

export class LabelExplorer {
  constructor(select, table, info, onFilter, onLabel) {
    Object.assign(this, { select, table, info, onFilter, onLabel });
    this.key = "";
    this.rows = [];
    select.onchange = () => onLabel(select.value);
    table.tBodies[0].onclick = (e) => {
      const tr = e.target.closest("tr[data-i]");
      if (tr) onFilter(this.label, this.rows[+tr.dataset.i].value);
    };
  }

  // show loads label's values for params (from, to, query, step) unless
  // they are what is shown.
  async show(params, label, names, signal) {
    addOptions(this.select, names);
    this.select.value = label;
    const key = JSON.stringify([params, label]);
    if (key === this.key) return;
    this.key = key;
    this.label = label;
    this.info.textContent = "Loading…";
    try {
      const g = await getJSON("series", { ...params, group_by: label, limit: 50 }, signal);
      this.render(g);
    } catch (e) {
      if (e.name === "AbortError") return;
      this.key = "";
      this.rows = [];
      this.table.tBodies[0].innerHTML = "";
      this.info.textContent = e instanceof ApiError && e.status === 400 ? `No sample of the range has the label ${label}.` : "Unavailable: " + e.message;
    }
  }

  render(g) {
    const sum = (s) => s.points.reduce((a, p) => a + p[1], 0);
    const all = [...g.series, ...(g.other ? [g.other] : [])].reduce((a, s) => a + sum(s), 0) || 1;
    const steps = Math.max(1, (Date.parse(g.to) - Date.parse(g.from)) / 1000 / g.step_seconds);
    this.rows = g.series.map((s) => ({ value: s.labels[g.group_by] ?? "", share: sum(s) / all,
      mean: sum(s) / steps, peak: Math.max(0, ...s.points.map((p) => p[1])) }));
    this.table.tBodies[0].innerHTML = this.rows.map((r, i) => `<tr tabindex="0" data-i="${i}" title="Filter to ${escapeHTML(g.group_by)}=${escapeHTML(r.value)}">
      <td class="fn">${escapeHTML(r.value || "(none)")}<span class="bar-cell" data-w="${r.share.toFixed(4)}"></span></td>
      <td class="num">${formatShare(r.share)}</td><td class="num">${r.mean.toFixed(2)}</td><td class="num">${r.peak.toFixed(2)}</td></tr>`).join("");
    // The page's CSP allows no inline style attributes: widths are set here.
    for (const bar of this.table.querySelectorAll(".bar-cell")) bar.style.width = (+bar.dataset.w * 100) + "%";
    this.info.textContent = `${this.rows.length} values` + (g.truncated ? `, ${g.truncated} smaller ones (${formatShare(sum(g.other) / all)}) left out` : "");
  }
}

// setSelect shows value in a select, adding it as an option if missing
// (a link's group_by label that the list does not have).
export function setSelect(el, value) {
  if (![...el.options].some((o) => o.value === value)) el.add(new Option(value, value));
  el.value = value;
}

// addOptions offers names in a select besides the options it has (every
// label of the range for the flame graph's grouping).
export function addOptions(el, names) {
  for (const name of names) if (![...el.options].some((o) => o.value === name)) el.add(new Option(name, name));
}
