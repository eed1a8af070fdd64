// FlameView draws a Tree on a canvas. It stays fast with 100,000 nodes:
// the layout is computed once per tree (Tree.layout), a draw visits only
// the boxes at least minPx wide (a narrower box's whole subtree is skipped,
// its value shown by its parent), and draws are coalesced into one per
// animation frame.

import { formatValue, formatShare, formatSignedShare, frameKind, frameColour, diffColour, kindLabels, kindColour, docsURL, markerHelp, shortName, escapeHTML } from "./format.js";

const rowPx = 18;
const minPx = 0.5;
const font = '12px ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace';

export class FlameView {
  // opts: orientation ("icicle" roots at the top, "flame" at the bottom),
  // onFocus(node) after a zoom, onSandwich(node), tooltip (element),
  // ancestorsFaded (draw the zoomed node's ancestors).
  constructor(container, opts = {}) {
    this.container = container;
    this.opts = opts;
    this.orientation = opts.orientation || "icicle";
    this.canvas = document.createElement("canvas");
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", opts.label || "Flame graph; arrow keys move between frames, Enter zooms");
    container.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d", { alpha: false });
    this.tree = null;
    this.focus = 0;     // the zoomed node
    this.hover = -1;
    this.cursor = -1;   // the keyboard's node
    this.marks = null;  // search matches, or null
    this.diff = null;   // the tree when it is a diffTree, or null
    this.drawn = null;  // what the last draw put on screen, for hit tests
    this.pending = 0;
    this.lastDrawMs = 0;
    this.bind();
    new ResizeObserver(() => this.schedule()).observe(container);
  }

  setTree(tree, focus = 0) {
    this.tree = tree;
    this.focus = focus;
    this.hover = -1;
    this.cursor = -1;
    this.marks = null;
    this.diff = tree && tree.after ? tree : null;
    this.colours = new Map();
    this.schedule();
  }

  setFocus(node) {
    if (!this.tree) return;
    node = Math.max(0, Math.min(node, this.tree.n - 1));
    if (node !== this.focus) this.cursor = -1; // zoomed from outside: the keyboard starts over
    this.focus = node;
    this.schedule();
  }

  setOrientation(o) { this.orientation = o; this.schedule(); }
  setMarks(marks) { this.marks = marks; this.schedule(); }
  setTheme() { this.colours = new Map(); this.schedule(); }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.draw(); });
  }

  colourOf(i, dark) {
    const t = this.tree;
    if (this.diff) {
      const d = this.diff.after[i] - this.diff.before[i], scale = this.diff.colourScale;
      // A change of 0.1 pt or more starts at 30% colour and grows with the
      // square root: small changes beside a large one stay visible.
      const m = Math.abs(d), a = m < 1e-3 ? (m / 1e-3) * 0.3 : 0.3 + 0.7 * Math.sqrt(Math.min(1, m / scale));
      return diffColour(scale > 0 ? Math.sign(d) * a : 0, dark);
    }
    if (i === 0 && t.nameOf(0) === "root") return dark ? "hsl(220 8% 55%)" : "hsl(220 8% 80%)"; // all, of no kind
    // By function and binary: _start of two programs may be of two kinds.
    const group = t.isGroup(i), key = group ? -1 - t.name[i] : t.name[i] * 4194304 + t.binary[i];
    let c = this.colours.get(key);
    if (c === undefined) {
      const name = t.nameOf(i);
      c = frameColour(name, this.kindOf(i), dark);
      this.colours.set(key, c);
    }
    return c;
  }

  kindOf(i) { return this.tree.isGroup(i) ? "process" : frameKind(this.tree.nameOf(i), this.tree.binaryOf(i)); }

  draw() {
    const start = performance.now();
    const t = this.tree, ctx = this.ctx;
    const width = Math.max(100, this.container.clientWidth);
    if (!t) return;
    if (!this.drawCount) performance.mark("ember:first-draw-start");
    const f = this.focus;
    let maxDepth = t.depth[f];
    for (let i = f; i < t.end[f]; i++) if (t.depth[i] > maxDepth) maxDepth = t.depth[i];
    const rows = maxDepth + 1;
    const height = rows * rowPx;
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = width + "px";
      this.canvas.style.height = height + "px";
    }
    // Flame mode puts the roots at the bottom of a canvas that may be far
    // taller than its panel: show them when the graph or the mode changes.
    const view = this.orientation + ":" + f;
    if (this.shownView !== view || this.shownTree !== t) {
      this.shownView = view;
      this.shownTree = t;
      this.container.scrollTop = this.orientation === "flame" ? this.container.scrollHeight : 0;
    }
    const style = getComputedStyle(document.documentElement);
    const dark = style.getPropertyValue("color-scheme").trim() === "dark";
    const bg = style.getPropertyValue("--bg").trim(), dim = style.getPropertyValue("--dim").trim();
    const text = style.getPropertyValue("--box-text").trim(), match = style.getPropertyValue("--match").trim();
    const dimText = style.getPropertyValue("--dim-text").trim() || text;
    const focusRing = style.getPropertyValue("--focus").trim();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, width, height);
    ctx.font = font;
    ctx.textBaseline = "middle";
    const charPx = ctx.measureText("M").width;
    const flame = this.orientation === "flame";
    const yOf = (depth) => (flame ? height - (depth + 1) * rowPx : depth * rowPx);
    const scale = t.total[f] > 0 ? width / t.total[f] : 0;
    const x0 = t.x[f];
    const drawnNode = [], drawnX = [], drawnW = [];
    const byRow = Array.from({ length: rows }, () => []);

    const box = (i, px, pw, faded) => {
      const y = yOf(t.depth[i]);
      const w = pw > 3 ? pw - 1 : Math.max(pw, minPx);
      // Dimmed (not matched) and faded (above the zoom) boxes take the dim
      // colour and its own text colour, so that their labels stay legible.
      const dimmed = faded || (this.marks && !this.marks[i]);
      const fill = dimmed ? dim : this.colourOf(i, dark);
      ctx.fillStyle = fill;
      ctx.fillRect(px, y, w, rowPx - 1);
      if (this.marks && this.marks[i] && w > 2) {
        ctx.strokeStyle = match;
        ctx.lineWidth = 2;
        ctx.strokeRect(px + 1, y + 1, w - 2, rowPx - 3);
      }
      if (pw > charPx * 3 + 6) {
        const label = shortName(t.nameOf(i), Math.floor((pw - 6) / charPx));
        if (label) {
          ctx.fillStyle = dimmed ? dimText : text;
          ctx.fillText(label, px + 3, y + rowPx / 2);
        }
      }
      const k = drawnNode.length;
      drawnNode.push(i); drawnX.push(px); drawnW.push(pw);
      byRow[t.depth[i]].push(k);
    };

    // The zoomed node's ancestors span the width, faded: they are where we are.
    for (let a = t.parent[f]; a >= 0; a = t.parent[a]) box(a, 0, width, true);
    for (let i = f; i < t.end[f];) {
      const pw = t.total[i] * scale;
      if (pw < minPx) { i = t.end[i]; continue; }
      box(i, (t.x[i] - x0) * scale, pw, false);
      i++;
    }
    for (const [node, colour, lw] of [[this.cursor, focusRing, 2], [this.hover, text, 1]]) {
      const k = node >= 0 ? drawnNode.indexOf(node) : -1;
      if (k < 0) continue;
      ctx.strokeStyle = colour;
      ctx.lineWidth = lw;
      ctx.strokeRect(drawnX[k] + 0.5, yOf(t.depth[node]) + 0.5, Math.max(drawnW[k] - 2, 1), rowPx - 2);
    }
    this.drawn = { node: drawnNode, x: drawnX, w: drawnW, byRow, width, height, yOf };
    this.lastDrawMs = performance.now() - start;
    this.drawCount = (this.drawCount || 0) + 1;
    this.container.dispatchEvent(new CustomEvent("flamedrawn", { bubbles: true }));
  }

  // nodeAt is the node drawn under a point of the canvas, or -1.
  nodeAt(x, y) {
    const d = this.drawn;
    if (!d || !this.tree) return -1;
    const flame = this.orientation === "flame";
    const row = flame ? Math.floor((d.height - y) / rowPx) : Math.floor(y / rowPx);
    const ks = d.byRow[row];
    if (!ks) return -1;
    for (const k of ks) if (x >= d.x[k] && x < d.x[k] + Math.max(d.w[k], 1)) return d.node[k];
    return -1;
  }

  bind() {
    const c = this.canvas;
    const point = (e) => { const r = c.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    c.addEventListener("mousemove", (e) => {
      const node = this.nodeAt(...point(e));
      if (node !== this.hover) { this.hover = node; this.schedule(); }
      this.showTooltip(node, e.clientX, e.clientY);
    });
    c.addEventListener("mouseleave", () => { this.hover = -1; this.showTooltip(-1); this.schedule(); });
    c.addEventListener("click", (e) => {
      const node = this.nodeAt(...point(e));
      if (node >= 0) this.zoom(node);
    });
    c.addEventListener("contextmenu", (e) => {
      const node = this.nodeAt(...point(e));
      if (node > 0 && this.opts.onSandwich) { e.preventDefault(); this.opts.onSandwich(node); }
    });
    c.addEventListener("keydown", (e) => this.key(e));
    c.addEventListener("focus", () => { if (this.cursor < 0 && this.tree) { this.cursor = this.focus; this.schedule(); } });
  }

  zoom(node) {
    this.focus = node;
    this.cursor = node;
    this.schedule();
    if (this.opts.onFocus) this.opts.onFocus(node);
  }

  key(e) {
    const t = this.tree;
    if (!t || e.altKey || e.ctrlKey || e.metaKey) return;
    let c = this.cursor >= 0 ? this.cursor : this.focus;
    const up = this.orientation === "flame" ? "ArrowDown" : "ArrowUp";
    const down = this.orientation === "flame" ? "ArrowUp" : "ArrowDown";
    const siblings = () => { // left to right as drawn
      const p = t.parent[c], out = [];
      if (p < 0) return [c];
      for (let s = p + 1; s < t.end[p]; s = t.end[s]) out.push(s);
      return out.sort((a, b) => t.x[a] - t.x[b]);
    };
    switch (e.key) {
      case up: if (t.parent[c] >= 0) c = t.parent[c]; break;
      case down: if (t.end[c] > c + 1) c = c + 1; break;
      case "ArrowLeft": case "ArrowRight": {
        const sib = siblings(), k = sib.indexOf(c) + (e.key === "ArrowLeft" ? -1 : 1);
        if (k >= 0 && k < sib.length) c = sib[k];
        break;
      }
      case "Enter": this.zoom(c); e.preventDefault(); return;
      case "Backspace": case "Escape":
        if (this.focus > 0) { this.zoom(t.parent[this.focus]); e.preventDefault(); e.stopPropagation(); }
        return;
      case "s": if (c > 0 && this.opts.onSandwich) this.opts.onSandwich(c); return;
      default: return;
    }
    e.preventDefault();
    this.cursor = c;
    this.schedule();
    this.announce(c);
  }

  announce(node) {
    const t = this.tree, d = this.diff;
    this.canvas.setAttribute("aria-label", d
      ? `${t.nameOf(node)}: ${formatShare(d.after[node])} of all, ${formatSignedShare(d.after[node] - d.before[node])} against the base`
      : `${t.nameOf(node)}: ${formatShare(t.total[node] / (t.grandTotal || 1))} of all`);
  }

  showTooltip(node, cx, cy) {
    const tip = this.opts.tooltip;
    if (!tip) return;
    if (node < 0) { tip.hidden = true; return; }
    const t = this.tree, all = t.grandTotal || 1;
    const name = t.nameOf(node), place = t.placeOf(node), binary = t.binaryOf(node);
    const kind = node === 0 ? "" : this.kindOf(node);
    const rows = [kind ? ["kind", kindLabels[kind]] : null];
    if (kind === "process") {
      // A group: the label's value, and the processes it holds.
      const g = t.groups.get(name);
      rows.push([t.groupBy, name]);
      for (const [label, v] of Object.entries((g && g.labels) || {})) {
        rows.push([label, v.values.join(", ") + (v.count > v.values.length ? ` (+${v.count - v.values.length} more)` : "")]);
      }
    } else {
      if (place) rows.push(["file", place]);
      if (binary) rows.push(["binary", binary]);
    }
    if (this.diff) {
      // Shares of each range's own total: the values are not comparable.
      const d = this.diff, change = (a, b) => `${formatShare(a)}, base ${formatShare(b)}, ${formatSignedShare(a - b)}`;
      rows.push(["self", change(d.afterSelf[node], d.beforeSelf[node])]);
      rows.push(["total", change(d.after[node], d.before[node])]);
    } else {
      rows.push(["self", `${formatValue(t.self[node], t.unit)} (${formatShare(t.self[node] / all)})`]);
      rows.push(["total", `${formatValue(t.total[node], t.unit)} (${formatShare(t.total[node] / all)})`]);
      if (this.focus > 0 && t.total[this.focus] > 0) rows.push(["of zoom", formatShare(t.total[node] / t.total[this.focus])]);
    }
    const help = markerHelp(name);
    tip.innerHTML = `<div class="name">${escapeHTML(name)}</div>` +
      (help ? `<p class="help">${escapeHTML(help)} <span class="muted">More under “markers” in the colour key.</span></p>` : "") +
      `<table>${rows.filter(Boolean).map(([k, v]) => `<tr><td>${escapeHTML(k)}</td><td>${escapeHTML(v)}</td></tr>`).join("")}</table>`;
    tip.hidden = false;
    const r = tip.getBoundingClientRect();
    tip.style.left = Math.min(cx + 14, window.innerWidth - r.width - 8) + "px";
    tip.style.top = (cy + 16 + r.height > window.innerHeight ? cy - r.height - 10 : cy + 16) + "px";
  }

  // boxes describes what is drawn, in CSS pixels, for tests and tools.
  boxes() {
    const d = this.drawn;
    if (!d) return [];
    return d.node.map((node, k) => ({ node, name: this.tree.nameOf(node), x: d.x[k], w: d.w[k], depth: this.tree.depth[node] }));
  }
}

// renderKinds is the colour key of the flame graph: each kind of frame.
export function renderKinds(el, tree) {
  const kinds = Object.keys(kindLabels).filter((k) => k !== "process" || tree?.groupBy);
  el.innerHTML = kinds.map((k) => `<span class="kind"><span class="swatch" data-kind="${k}"></span>${escapeHTML(kindLabels[k])}` +
    (k === "marker" ? ` <a href="${docsURL}" target="_blank" rel="noopener" title="What the frames in brackets mean">(what are these?)</a>` : "") + "</span>").join("");
  for (const sw of el.querySelectorAll(".swatch")) sw.style.background = kindColour(sw.dataset.kind);
}
