// Numbers, names and colours shared by the views.

// formatValue renders a profile value in its unit: CPU time for nanoseconds.
export function formatValue(v, unit) {
  if (unit !== "nanoseconds") return formatCount(v);
  if (v === 0) return "0";
  const s = v / 1e9;
  if (s >= 3600) return (s / 3600).toFixed(2) + " h";
  if (s >= 60) return (s / 60).toFixed(1) + " min";
  if (s >= 1) return s.toFixed(2) + " s";
  if (s >= 1e-3) return (s * 1e3).toFixed(1) + " ms";
  return (s * 1e6).toFixed(0) + " µs";
}

// formatCount groups thousands by hand (toLocaleString loads locale data).
export function formatCount(n) {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function formatShare(x) {
  if (!isFinite(x)) return "–";
  const p = x * 100;
  const abs = Math.abs(p);
  return p.toFixed(abs >= 10 ? 1 : abs >= 0.1 ? 2 : 3) + "%";
}

export function formatSignedShare(x) {
  return (x > 0 ? "+" : x < 0 ? "−" : "±") + formatShare(Math.abs(x)).replace("%", " pt");
}

// formatTime is local time as HH:MM, with the date (YYYY-MM-DD) before it
// if asked; by hand, because the first toLocale* call of a page loads
// locale data for tens of milliseconds.
export function formatTime(t, withDate) {
  const d = t instanceof Date ? t : new Date(t);
  const p = (n) => String(n).padStart(2, "0");
  const hm = p(d.getHours()) + ":" + p(d.getMinutes());
  return withDate ? `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}` : hm;
}

// isoSeconds is a Date as the API accepts it, in UTC to the second.
export function isoSeconds(d) {
  return new Date(Math.round(d.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// hash is FNV-1a: the same name always gets the same colour.
export function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// frameKind sorts a frame into the families the colours tell apart: by
// its binary (kernel, a Go runtime, JIT code in anonymous memory, native
// code), never by a name seen elsewhere.
export function frameKind(name, binary) {
  if (name === "(other)") return "other";
  if (binary === "[kernel.kallsyms]" || name.startsWith("[kernel ") || name === "[unknown kernel address]") return "kernel";
  if (name.startsWith("[")) return "marker";
  // CPython's frames, read from the interpreter (a pseudo mapping).
  if (binary === "[python]") return "python";
  if (name.startsWith("runtime.") || name.startsWith("runtime/")) return "go";
  // JIT code runs from anonymous memory and is named by a perf map.
  if (binary === "" || binary.startsWith("[anon") || binary.startsWith("//anon") || binary.startsWith("/memfd:") || binary.startsWith("[jit")) return "jit";
  return "native";
}

export const kindLabels = { process: "process", native: "native", kernel: "kernel", go: "Go runtime", jit: "JIT", python: "Python", marker: "marker", other: "pruned" };

// docsURL is where the frames Ember makes up are explained.
export const docsURL = "https://github.com/ember-profiler/ember/blob/main/docs/markers.md";

// markerHelp says what a marker frame (a name in brackets that no program
// has) stands for, in a line; "" for other frames.
export function markerHelp(name) {
  if (name === "(other)") return "Frames too small to draw within the node budget, summed (raise it with &nodes= in the address).";
  if (!name.startsWith("[")) return "";
  if (name === "[truncated]") return "The stack walk stopped here: the stack was deeper than the unwinder's limit, or it left code it had no unwind tables for yet (a process's first samples, signal frames). The callers are unknown, not absent.";
  if (name.startsWith("[unknown in ")) return "An address in this file that no symbol table names (stripped, or not readable): the offset in the name is for objdump or addr2line.";
  if (name.startsWith("[unknown: process exited")) return "The process exited before its memory map was read: its frames could not be named.";
  if (name.startsWith("[unknown: ")) return "The address could not be tied to a mapped file.";
  if (name === "[unknown kernel address]") return "A kernel address that kallsyms does not list (a module loaded or unloaded since).";
  if (name.startsWith("[user stack lost") || name.startsWith("[kernel stack lost")) return "The sampler lost this stack (the reason follows the colon); the sample's CPU time still counts.";
  if (name === "[vdso]" || name === "[vsyscall]") return "Code the kernel maps into every process for fast system calls (clock_gettime).";
  if (/^\[unknown .* frame\]$/.test(name)) return "An interpreted or JIT frame whose name the unwinder could not read.";
  if (name === "[python: process exited]") return "A Python frame of a process that exited before its code object was read.";
  if (name.startsWith("[python: ")) return "A Python frame whose code object could not be read from the process.";
  return "A frame Ember made up where no function could be named.";
}

// Hue ranges per kind; lightness and hue within the range come from the
// name's hash, so a function keeps its colour across reloads and views.
const palettes = {
  process: [180, 180, 22, 72],
  native: [8, 46, 78, 60],
  kernel: [195, 215, 55, 66],
  go: [262, 285, 48, 70],
  jit: [95, 135, 45, 58],
  python: [300, 330, 50, 72],
  marker: [0, 0, 0, 72],
  other: [0, 0, 0, 80],
};

// kindColour is a kind's colour for the legend: the middle of its range.
export function kindColour(kind) {
  const [h0, h1, s, l] = palettes[kind] || palettes.native;
  return `hsl(${((h0 + h1) / 2).toFixed(0)} ${s}% ${l}%)`;
}

export function frameColour(name, kind, dark) {
  const [h0, h1, s, l] = palettes[kind] || palettes.native;
  const h = hash(name);
  const hue = h0 + ((h & 0xff) / 255) * (h1 - h0);
  // The same in both themes: box labels are dark on every box, and
  // darker boxes would fall below WCAG AA's 4.5:1 for them.
  const light = l + (((h >>> 8) & 0xff) / 255) * 10 - 5;
  return `hsl(${hue.toFixed(0)} ${s}% ${light.toFixed(0)}%)`;
}

// diffColour shades from blue (colder) through grey to red (hotter);
// t is in [-1, 1].
export function diffColour(t, dark) {
  const a = Math.min(1, Math.abs(t));
  const grey = 82; // in both themes: dark labels stay legible (WCAG AA)
  if (t > 0) return `hsl(0 ${(20 + 65 * a).toFixed(0)}% ${(grey - 22 * a).toFixed(0)}%)`;
  if (t < 0) return `hsl(217 ${(20 + 65 * a).toFixed(0)}% ${(grey - 20 * a).toFixed(0)}%)`;
  return `hsl(220 8% ${grey}%)`;
}

export function seriesColour(key, i) {
  const hues = [24, 210, 140, 280, 45, 175, 330, 95, 250, 0];
  return `hsl(${hues[i % hues.length]} 65% 55%)`;
}

// shortName fits a function name into maxChars, losing first what a reader
// misses least: arguments and template parameters, then the package or
// namespace path, then the type, then the tail.
export function shortName(name, maxChars) {
  if (name.length <= maxChars) return name;
  if (maxChars < 2) return "";
  let s = name.endsWith(")") ? stripLastArgs(name) : name;
  s = stripBalanced(s, "<", ">");
  const candidates = [s];
  s = s.slice(s.lastIndexOf("/") + 1); // Go: github.com/x/y/pkg.(*T).M -> pkg.(*T).M
  candidates.push(s);
  const colons = s.split("::"); // C++, Rust: a::b::C::m -> C::m -> m
  if (colons.length > 2) candidates.push(colons.slice(-2).join("::"));
  if (colons.length > 1) candidates.push(colons[colons.length - 1]);
  const dots = s.split(".");
  if (dots.length > 2) candidates.push(dots.slice(-2).join(".")); // Go, Java: pkg.(*T).M -> (*T).M
  const last = candidates[candidates.length - 1];
  if (last.endsWith("(…)")) candidates.push(last.slice(0, -3));
  for (const c of candidates) if (c.length <= maxChars) return c;
  const shortest = candidates[candidates.length - 1];
  return shortest.slice(0, maxChars - 1) + "…";
}

// stripLastArgs shortens a trailing argument list: f(int, char*) -> f(…).
function stripLastArgs(s) {
  let depth = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    if (s[i] === ")") depth++;
    else if (s[i] === "(" && --depth === 0) return i > 0 ? s.slice(0, i) + "(…)" : s;
  }
  return s;
}

// stripBalanced replaces what sits inside top-level open/close pairs with
// an ellipsis: vector<int> -> vector<…>.
function stripBalanced(s, open, close) {
  if (!s.includes(open)) return s;
  let out = "", depth = 0;
  for (const c of s) {
    if (c === open) {
      if (depth === 0) out += open + "…";
      depth++;
    } else if (c === close && depth > 0) {
      depth--;
      if (depth === 0) out += close;
    } else if (depth === 0) out += c;
  }
  return out;
}

// seriesStep asks for about 240 points in a whole number of the daemon's
// default interval (10 s): a step of 15 s over 10 s intervals holds one or
// two of them by turns, and draws a flat 2 cores as 1.3 and 2.7.
export function seriesStep(from, to) {
  const ms = rangeMs(from, to);
  return ms ? Math.max(1, Math.ceil(ms / 240 / 10e3)) * 10 + "s" : "";
}

// rangeMs is the length of the range when the page can tell it without
// asking: relative ranges like now-1h, and absolute RFC 3339 ones.
export function rangeMs(from, to) {
  const rel = (v) => {
    if (v === "now") return Date.now();
    const m = v.match(/^(?:now)?-(\d+)([smhdw])$/);
    if (m) return Date.now() - m[1] * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[m[2]];
    const t = Date.parse(v);
    return isNaN(t) ? NaN : t;
  };
  const d = rel(to) - rel(from);
  return d > 0 ? d : 0;
}
