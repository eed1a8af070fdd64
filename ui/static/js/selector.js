// The label filter: a selector text field ({comm="nginx", pid!="1"}) with
// completion of label names and values from the API, and the matchers shown
// as removable chips.

import { getJSON } from "./api.js";
import { escapeHTML } from "./format.js";

const matcherRE = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g;

export function parseMatchers(text) {
  return [...text.matchAll(matcherRE)].map((m) => ({ name: m[1], op: m[2], value: m[3], text: m[0] }));
}

export function formatSelector(matchers) {
  return matchers.length ? "{" + matchers.map((m) => `${m.name}${m.op}"${m.value}"`).join(", ") + "}" : "";
}

// normalizeSelector wraps matchers typed without braces.
export function normalizeSelector(text) {
  const t = text.trim();
  if (!t || t === "{}") return "";
  return t.startsWith("{") ? t : "{" + t + "}";
}

export function quoteValue(v) { return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"'); }

export class SelectorInput {
  // range() gives {from, to} for the label queries; onApply(selector).
  constructor(input, list, chips, range, onApply) {
    Object.assign(this, { input, list, chips, range, onApply });
    this.items = [];
    this.active = -1;
    this.names = null;
    this.values = new Map();
    this.bind();
  }

  set(text) {
    this.input.value = text;
    this.renderChips();
  }

  // forget drops cached label names and values (the range changed).
  forget() { this.names = null; this.values.clear(); }

  async complete() {
    // Answers can come back out of order (the focus's before the typing's):
    // only the latest call may show its list.
    const seq = this.seq = (this.seq || 0) + 1;
    const text = this.input.value, caret = this.input.selectionStart ?? text.length;
    const before = text.slice(0, caret);
    const valueCtx = before.match(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/);
    const nameCtx = before.match(/(?:^|[{,]\s*)([a-zA-Z_][a-zA-Z0-9_]*)?$/);
    let items = [];
    try {
      if (valueCtx) {
        const [, name, , partial] = valueCtx;
        const values = await this.labelValues(name);
        const p = partial.toLowerCase();
        items = values.filter((v) => v.toLowerCase().includes(p)).slice(0, 50)
          .map((v) => ({ label: v, insert: quoteValue(v) + '"', from: caret - partial.length }));
      } else if (nameCtx) {
        const partial = nameCtx[1] || "";
        const names = await this.labelNames();
        items = names.filter((n) => n.startsWith(partial))
          .map((n) => ({ label: n, insert: n + '="', from: caret - partial.length }));
      }
    } catch {
      items = []; // completion is a help; the API's error shows on apply
    }
    if (seq !== this.seq) return;
    if (this.input !== document.activeElement) items = [];
    this.show(items);
  }

  async labelNames() {
    if (!this.names) this.names = (await getJSON("labels", this.range())).names;
    return this.names;
  }

  async labelValues(name) {
    if (!this.values.has(name)) {
      let values = [];
      try { values = (await getJSON(`labels/${encodeURIComponent(name)}/values`, this.range())).values; } catch { /* 404: none */ }
      this.values.set(name, values);
    }
    return this.values.get(name);
  }

  show(items) {
    this.items = items;
    this.active = items.length ? 0 : -1;
    this.list.hidden = !items.length;
    this.input.setAttribute("aria-expanded", String(!!items.length));
    this.list.innerHTML = items.map((it, i) =>
      `<li role="option" id="sugg-${i}" data-i="${i}" aria-selected="${i === this.active}">${escapeHTML(it.label)}</li>`).join("");
    this.markActive();
  }

  markActive() {
    [...this.list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === this.active)));
    if (this.active >= 0) {
      this.input.setAttribute("aria-activedescendant", "sugg-" + this.active);
      this.list.children[this.active]?.scrollIntoView({ block: "nearest" });
    } else this.input.removeAttribute("aria-activedescendant");
  }

  accept(i) {
    const it = this.items[i];
    if (!it) return;
    const text = this.input.value, caret = this.input.selectionStart ?? text.length;
    let rest = text.slice(caret);
    if (it.insert.endsWith('"') && rest.startsWith('"')) rest = rest.slice(1);
    let head = text.slice(0, it.from);
    if (!head.trim()) head = "{" + head.trimStart();
    if (!rest.includes("}")) rest += "}";
    this.input.value = head + it.insert + rest;
    const pos = head.length + it.insert.length;
    this.input.setSelectionRange(pos, pos);
    this.show([]);
    this.complete();
  }

  apply() {
    this.show([]);
    const sel = normalizeSelector(this.input.value);
    this.input.value = sel;
    this.renderChips();
    this.onApply(sel);
  }

  renderChips() {
    const ms = parseMatchers(this.input.value);
    this.chips.innerHTML = ms.map((m, i) =>
      `<span class="chip">${escapeHTML(m.name + m.op + '"' + m.value + '"')}<button type="button" data-i="${i}" aria-label="Remove ${escapeHTML(m.name)} filter">×</button></span>`).join("");
  }

  bind() {
    const inp = this.input;
    inp.addEventListener("input", () => this.complete());
    inp.addEventListener("focus", () => this.complete());
    inp.addEventListener("blur", () => setTimeout(() => this.show([]), 150));
    inp.addEventListener("keydown", (e) => {
      const open = !this.list.hidden;
      if (e.key === "ArrowDown" && open) { this.active = (this.active + 1) % this.items.length; this.markActive(); e.preventDefault(); }
      else if (e.key === "ArrowUp" && open) { this.active = (this.active - 1 + this.items.length) % this.items.length; this.markActive(); e.preventDefault(); }
      else if (e.key === "Tab" && open && this.active >= 0) { this.accept(this.active); e.preventDefault(); }
      else if (e.key === "Enter") {
        if (open && this.active >= 0 && !e.ctrlKey) this.accept(this.active); else this.apply();
        e.preventDefault();
      } else if (e.key === "Escape") {
        if (open) { this.show([]); e.stopPropagation(); } else inp.blur();
      }
    });
    this.list.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li");
      if (li) { e.preventDefault(); this.accept(+li.dataset.i); }
    });
    this.chips.addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      const ms = parseMatchers(this.input.value);
      ms.splice(+b.dataset.i, 1);
      this.input.value = formatSelector(ms);
      this.apply();
    });
  }
}
