// Timeline draws CPU use in cores over the range: the total as a line and,
// when grouped, the busiest groups stacked under it. Dragging selects a
// sub-range (onSelect(fromMs, toMs)).

import { formatTime, seriesColour } from "./format.js";

const pad = { left: 44, right: 8, top: 8, bottom: 18 };

export class Timeline {
  constructor(canvas, brush, readout, onSelect, note) {
    this.note = note;
    this.canvas = canvas;
    this.brush = brush;
    this.readout = readout;
    this.onSelect = onSelect;
    this.total = null;   // SeriesResponse without group_by
    this.grouped = null; // SeriesResponse with group_by, or null
    this.unit = "cores"; // of the points: "threads" for time off the CPU
    this.bind();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(total, grouped) {
    this.total = total;
    this.grouped = grouped;
    this.draw();
  }

  get fromMs() { return this.total ? Date.parse(this.total.from) : 0; }
  get toMs() { return this.total ? Date.parse(this.total.to) : 1; }
  plotWidth() { return this.canvas.clientWidth - pad.left - pad.right; }
  xOf(ms) { return pad.left + ((ms - this.fromMs) / (this.toMs - this.fromMs)) * this.plotWidth(); }
  msAt(x) { return this.fromMs + ((x - pad.left) / this.plotWidth()) * (this.toMs - this.fromMs); }

  draw() {
    const c = this.canvas, ctx = c.getContext("2d");
    const w = c.clientWidth, h = c.clientHeight, dpr = window.devicePixelRatio || 1;
    if (!w || !h) return;
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const style = getComputedStyle(document.documentElement);
    const fg = style.getPropertyValue("--muted").trim(), line = style.getPropertyValue("--line").trim();
    const plot = style.getPropertyValue("--plot").trim();
    ctx.clearRect(0, 0, w, h);
    if (this.note) this.note.textContent = "";
    if (!this.total) return;
    const points = this.total.series.length ? this.total.series[0].points : [];
    const cpus = this.total.cpus || 0;
    let dataMax = 0, over = 0;
    for (const [, v] of points) {
      dataMax = Math.max(dataMax, v);
      if (cpus && v > cpus * 1.01) over++;
    }
    // The host cannot use more than its CPUs: a step above that is an
    // artifact of how the series was counted, cut at the CPU count and
    // said so, not drawn as a spike that never happened.
    let top = cpus && over ? cpus : dataMax;
    if (!points.length) top = cpus || 1; // an empty range: the host's scale
    const tickY = niceCeil(Math.max(top, 0.2) / 4); // four gridlines at round values
    const maxY = tickY * 4;
    this.maxY = maxY;
    if (over && this.note) {
      this.note.textContent = `${over} step${over > 1 ? "s" : ""} above the host's ${cpus} CPUs, cut at ${cpus}: ` +
        "the series counted more CPU time in a step than the host has (stored intervals that straddle steps).";
    }
    const clip = (v) => (cpus && over ? Math.min(v, cpus) : v);
    const ph = h - pad.top - pad.bottom;
    const yOf = (v) => pad.top + ph - (clip(v) / maxY) * ph;
    const step = this.total.step_seconds * 1000;

    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = fg;
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = (maxY * i) / 4, y = Math.round(yOf(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(pad.left, y); ctx.lineTo(w - pad.right, y); ctx.stroke();
      ctx.fillText(trimNum(v), pad.left - 4, y);
    }
    ctx.save();
    ctx.translate(10, pad.top + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(this.unit, 0, 0);
    ctx.restore();
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const span = this.toMs - this.fromMs;
    const tick = pickTick(span, this.plotWidth());
    for (let t = Math.ceil(this.fromMs / tick) * tick; t <= this.toMs; t += tick) {
      const x = this.xOf(t);
      ctx.textAlign = x > w - 24 ? "right" : "center"; // keep the last label inside
      ctx.fillText(formatTime(t, span > 36 * 3600e3 && (t % 86400e3 === 0 || tick >= 86400e3)), Math.min(x, w - 2), h - pad.bottom + 3);
    }

    // Stacked groups: each bucket's values summed bottom-up.
    if (this.grouped && this.grouped.series.length) {
      const base = new Map();
      this.grouped.series.forEach((s, i) => {
        ctx.fillStyle = seriesColour(s.labels[this.grouped.group_by], i);
        ctx.globalAlpha = 0.75;
        for (const [ts, v] of s.points) {
          const b = base.get(ts) || 0;
          const x = this.xOf(ts * 1000), x2 = this.xOf(ts * 1000 + step);
          ctx.fillRect(x, yOf(b + v), Math.max(x2 - x - 0.5, 0.5), yOf(b) - yOf(b + v));
          base.set(ts, b + v);
        }
      });
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = plot;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(([ts, v], i) => {
      const x = this.xOf(ts * 1000 + step / 2);
      if (i === 0) ctx.moveTo(x, yOf(v)); else ctx.lineTo(x, yOf(v));
    });
    ctx.stroke();
    if (!this.grouped) {
      ctx.fillStyle = plot;
      ctx.globalAlpha = 0.15;
      ctx.lineTo(this.xOf(this.toMs), yOf(0));
      ctx.lineTo(this.xOf(this.fromMs), yOf(0));
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }

  bind() {
    const c = this.canvas;
    let start = null;
    const xIn = (e) => {
      const r = c.getBoundingClientRect();
      return Math.max(pad.left, Math.min(e.clientX - r.left, r.width - pad.right));
    };
    const show = (a, b) => {
      this.brush.hidden = false;
      this.brush.style.left = Math.min(a, b) + "px";
      this.brush.style.width = Math.abs(b - a) + "px";
    };
    c.addEventListener("mousedown", (e) => { if (this.total && e.button === 0) { start = xIn(e); e.preventDefault(); } });
    window.addEventListener("mousemove", (e) => { if (start !== null) show(start, xIn(e)); });
    window.addEventListener("mouseup", (e) => {
      if (start === null) return;
      const end = xIn(e), a = Math.min(start, end), b = Math.max(start, end);
      start = null;
      this.brush.hidden = true;
      if (b - a >= 3) this.onSelect(this.msAt(a), this.msAt(b));
    });
    c.addEventListener("mousemove", (e) => {
      if (!this.total || !this.total.series.length) return;
      const ms = this.msAt(xIn(e));
      const pts = this.total.series[0].points;
      let best = null;
      for (const p of pts) if (p[0] * 1000 <= ms) best = p;
      this.readout.textContent = best ? `${formatTime(best[0] * 1000, true)}  ${best[1].toFixed(2)} ${this.unit}` : "";
    });
    c.addEventListener("mouseleave", () => { this.readout.textContent = ""; });
  }
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function trimNum(v) { return v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1).replace(/\.0$/, "") : String(+v.toFixed(3)); }

function pickTick(spanMs, px) {
  const want = spanMs / Math.max(2, px / 90);
  for (const m of [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080]) if (m * 60e3 >= want) return m * 60e3;
  return 10080 * 60e3;
}

// totalOf sums a grouped series answer (its groups and "other") into the
// total series the timeline draws as its line.
export function totalOf(g) {
  const sum = new Map();
  for (const s of [...g.series, ...(g.other ? [g.other] : [])]) {
    for (const [ts, v] of s.points) sum.set(ts, (sum.get(ts) || 0) + v);
  }
  const points = [...sum].sort((a, b) => a[0] - b[0]);
  return { ...g, group_by: "", series: points.length ? [{ labels: {}, points }] : [], truncated: 0, other: undefined };
}
