// SourceView lists a function's cost per source line, from the lines in
// the profile (the API's /source): where in the function the time went,
// beside the source text when the file is on the host.

import { getJSON } from "./api.js";
import { escapeHTML, formatShare } from "./format.js";
import { splitKey } from "./tree.js";

export class SourceView {
  constructor(table, info) {
    Object.assign(this, { table, info });
    this.key = "";
    this.rows = null;
    this.text = null;
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
      this.text = src.text || null;
      const where = `${src.file || "(no file)"} in ${src.binary || "?"}`;
      this.info.textContent = !src.lines.length ? "No line information for this function."
        : src.text ? where : `${where} (no source text: ${src.no_text || "unavailable"})`;
      const cost = new Map(src.lines.map((l) => [l.line, l]));
      // With the text, every line around the function's, costs beside the
      // ones that have any; without it, the lines that have a cost.
      const shown = src.text ? src.text.lines.map((code, i) => ({ line: src.text.first + i, code }))
        : src.lines.map((l) => ({ line: l.line, code: "" }));
      this.table.tBodies[0].innerHTML = shown.map(({ line, code }) => {
        const l = cost.get(line);
        const cells = l ? `<td class="num">${formatShare(l.self / all)}</td><td class="num">${formatShare(l.total / all)}</td>
          <td class="fn"><span class="bar-cell" data-w="${(l.total / all).toFixed(4)}"></span></td>`
          : `<td class="num"></td><td class="num"></td><td class="fn"></td>`;
        return `<tr${l ? "" : ` class="cold"`}><td class="num">${line || "?"}</td>${cells}<td class="code">${escapeHTML(code)}</td></tr>`;
      }).join("");
      for (const bar of this.table.querySelectorAll(".bar-cell")) bar.style.width = (+bar.dataset.w * 100) + "%";
    } catch (e) {
      if (e.name === "AbortError") return;
      this.key = "";
      this.info.textContent = "Lines unavailable: " + escapeHTML(e.message);
    }
  }
}
