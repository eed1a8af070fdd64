// SourceView lists a function's cost per source line, from the lines in
// the profile (the API's /source): where in the function the time went.

import { getJSON } from "./api.js";
import { escapeHTML, formatShare } from "./format.js";
import { splitKey } from "./tree.js";

export class SourceView {
  constructor(table, info) {
    Object.assign(this, { table, info });
    this.key = "";
    this.rows = null;
  }

  // show loads function fnKey ("name @binary") over params (from, to,
  // query) unless it is what is shown.
  async show(params, fnKey) {
    const key = JSON.stringify([params, fnKey]);
    if (key === this.key) return;
    this.key = key;
    this.rows = null;
    const [fn, binary] = splitKey(fnKey);
    this.info.textContent = "Loading lines…";
    try {
      const src = await getJSON("source", { ...params, function: fn, binary });
      const all = src.total || 1;
      this.rows = src.lines;
      this.info.textContent = src.lines.length ? `${src.file || "(no file)"} in ${src.binary || "?"}` : "No line information for this function.";
      this.table.tBodies[0].innerHTML = src.lines.map((l) => `<tr><td class="num">${l.line || "?"}</td>
        <td class="num">${formatShare(l.self / all)}</td><td class="num">${formatShare(l.total / all)}</td>
        <td class="fn"><span class="bar-cell" data-w="${(l.total / all).toFixed(4)}"></span></td></tr>`).join("");
      for (const bar of this.table.querySelectorAll(".bar-cell")) bar.style.width = (+bar.dataset.w * 100) + "%";
    } catch (e) {
      if (e.name === "AbortError") return;
      this.key = "";
      this.info.textContent = "Lines unavailable: " + escapeHTML(e.message);
    }
  }
}
