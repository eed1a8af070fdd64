// The call tree as the views use it: the API's parallel arrays (see
// FlameGraph in web/flamegraph.go) in typed arrays, laid out once, plus the
// derived trees and tables (search, top functions, sandwich, diff), all
// computed in the browser from the one tree the API sent.

// siblingOrder is how a node's children are laid out: "weight", the
// heaviest left (speedscope's left heavy, the API's order), or "name",
// alphabetical as pprof and flamegraph.pl draw them, so that a function
// keeps its place from one range or process to the next.
let siblingOrder = "weight";

// setSiblingOrder sets the order trees are laid out in from now on.
export function setSiblingOrder(order) { siblingOrder = order === "name" ? "name" : "weight"; }

const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

export class Tree {
  // Nodes are in pre-order, parents before children, siblings largest
  // first: a node's subtree is the index range [i, end[i]).
  // line is each node's source line (0 when unknown; all 0 if absent).
  constructor(strings, parent, name, file, binary, self, total, unit, line) {
    this.strings = strings;
    this.n = parent.length;
    // Typed arrays (api.js's) are taken as they are, not copied.
    const ints = (a) => (a instanceof Int32Array ? a : Int32Array.from(a));
    const floats = (a) => (a instanceof Float64Array ? a : Float64Array.from(a));
    this.parent = ints(parent);
    this.name = ints(name);
    this.file = ints(file);
    this.line = line ? ints(line) : new Int32Array(this.n);
    this.binary = ints(binary);
    this.self = floats(self);
    this.total = floats(total);
    this.unit = unit || "nanoseconds";
    this.layout();
  }

  static fromAPI(fg) {
    const n = fg.nodes;
    if (!n.parent.length) {
      return new Tree(["", "root"], [-1], [1], [0], [0], [0], [0], fg.unit);
    }
    const t = new Tree(fg.strings, n.parent, n.name, n.file, n.binary, n.self, n.total, fg.unit, n.line);
    t.setGroups(fg.group_by, fg.groups);
    return t;
  }

  // setGroups marks the first level as the values of label groupBy (the
  // API's group_by), described by groups.
  setGroups(groupBy, groups) {
    this.groupBy = groupBy || "";
    this.groups = new Map((groups || []).map((g) => [g.value, g]));
  }

  // isGroup says whether node i is a group (a process, a container...)
  // rather than a function.
  isGroup(i) { return !!this.groupBy && this.depth[i] === 1 && this.nameOf(i) !== "(other)"; }

  // layout gives every node its depth, its offset from the left in value
  // units (siblings in siblingOrder), and the end of its subtree.
  layout() {
    const n = this.n;
    this.depth = new Int32Array(n);
    this.x = new Float64Array(n);
    this.end = new Int32Array(n);
    let maxDepth = 0;
    for (let i = 1; i < n; i++) {
      this.depth[i] = this.depth[this.parent[i]] + 1;
      if (this.depth[i] > maxDepth) maxDepth = this.depth[i];
    }
    for (let i = 0; i < n; i++) this.end[i] = i + 1;
    for (let i = n - 1; i > 0; i--) {
      const p = this.parent[i];
      if (this.end[i] > this.end[p]) this.end[p] = this.end[i];
    }
    this.maxDepth = maxDepth;
    this.order = siblingOrder;
    if (siblingOrder === "name") {
      // Parents come before children: each node's x is known when its
      // children are placed. "(other)" stays last.
      const key = (c) => (this.nameOf(c) === "(other)" ? "\uffff" : this.nameOf(c));
      for (let i = 0; i < n; i++) {
        const kids = [];
        for (let c = i + 1; c < this.end[i]; c = this.end[c]) kids.push(c);
        if (kids.length > 1) kids.sort((a, b) => compare(key(a), key(b)) || compare(this.binaryOf(a), this.binaryOf(b)) || a - b);
        let x = this.x[i];
        for (const c of kids) { this.x[c] = x; x += this.total[c]; }
      }
      return;
    }
    const next = new Float64Array(n); // where the next child of a node starts
    for (let i = 1; i < n; i++) {
      const p = this.parent[i];
      this.x[i] = next[p] + this.x[p];
      next[p] += this.total[i];
    }
  }

  // relayout lays the tree out again if the sibling order changed since.
  relayout() { if (this.order !== siblingOrder) this.layout(); }

  nameOf(i) { return this.strings[this.name[i]]; }
  fileOf(i) { return this.strings[this.file[i]]; }
  // placeOf is "file:line", the file alone, "line N", or "".
  placeOf(i) {
    const f = this.fileOf(i), l = this.line[i];
    return l > 0 ? (f ? f + ":" + l : "line " + l) : f;
  }
  binaryOf(i) { return this.strings[this.binary[i]]; }
  get grandTotal() { return this.total[0]; }

  // keyOf is node i's identity among its siblings: the function and the
  // binary it is in ("main @app"), so that main of two programs, or _start
  // of two processes, are never taken for one another.
  keyOf(i) { return functionKey(this.nameOf(i), this.binaryOf(i)); }

  // pathOf lists the keys from the root's first child down to i.
  pathOf(i) {
    const out = [];
    for (; i > 0; i = this.parent[i]) out.push(this.keyOf(i));
    return out.reverse();
  }

  // findPath follows keys from the root; it returns the deepest node
  // reached, so a path that no longer exists still lands near its place.
  // A step without a binary (an older link) matches by name when no key
  // does.
  findPath(keys) {
    let node = 0;
    for (const want of keys) {
      let found = -1, byName = -1;
      for (let c = node + 1; c < this.end[node]; c = this.end[c]) {
        if (this.keyOf(c) === want) { found = c; break; }
        if (byName < 0 && this.nameOf(c) === want) byName = c;
      }
      if (found < 0) found = byName;
      if (found < 0) break;
      node = found;
    }
    return node;
  }

  isAncestor(a, b) { return a <= b && b < this.end[a]; }

  // matches marks the nodes whose name passes test, and returns with the
  // marks the share of all value under a marked node (nested matches count
  // once). On a diffTree, after and before are the same shares in each range.
  matches(test) {
    const marks = new Uint8Array(this.n);
    const cache = new Map(); // by string index: names repeat
    let covered = 0, value = 0, count = 0, after = 0, before = 0;
    for (let i = 1; i < this.n; i++) {
      const s = this.name[i];
      let m = cache.get(s);
      if (m === undefined) { m = test(this.strings[s]); cache.set(s, m); }
      if (!m) continue;
      marks[i] = 1;
      count++;
      if (i >= covered) {
        value += this.total[i];
        covered = this.end[i];
        if (this.after) { after += this.after[i]; before += this.before[i]; }
      }
    }
    const m = { marks, share: this.grandTotal ? value / this.grandTotal : 0, value, count };
    if (this.after) { m.after = after; m.before = before; }
    return m;
  }

  // functions sums self and total per function (name and binary). Total
  // counts a recursive function once per stack: only its outermost frames
  // add. Groups are not functions.
  functions() {
    const self = new Map(), total = new Map(), onStack = new Map(), first = new Map();
    const stack = [];
    const id = (i) => (this.isGroup(i) ? -1 - this.name[i] : this.name[i] * 4194304 + this.binary[i]);
    for (let i = 1; i < this.n; i++) {
      const p = this.parent[i];
      while (stack.length && stack[stack.length - 1] !== p) { const k = id(stack.pop()); onStack.set(k, onStack.get(k) - 1); }
      stack.push(i);
      const k = id(i);
      if (k < 0) { onStack.set(k, (onStack.get(k) || 0) + 1); continue; }
      if (!first.has(k)) first.set(k, i);
      self.set(k, (self.get(k) || 0) + this.self[i]);
      if (!onStack.get(k)) total.set(k, (total.get(k) || 0) + this.total[i]);
      onStack.set(k, (onStack.get(k) || 0) + 1);
    }
    const out = [];
    for (const [k, t] of total) {
      const i = first.get(k);
      out.push({ key: this.keyOf(i), name: this.nameOf(i), binary: this.binaryOf(i), self: self.get(k) || 0, total: t });
    }
    return out;
  }

  // occurrences lists the outermost nodes of function key (see keyOf).
  occurrences(key) {
    const out = [];
    for (let i = 1; i < this.n; i++) {
      if (!this.isGroup(i) && this.keyOf(i) === key) { out.push(i); i = this.end[i] - 1; }
    }
    return out;
  }

  // matchesKey marks every frame of function key, as matches does.
  matchesKey(key) {
    const marks = new Uint8Array(this.n);
    let covered = 0, value = 0, count = 0;
    for (let i = 1; i < this.n; i++) {
      if (this.isGroup(i) || this.keyOf(i) !== key) continue;
      marks[i] = 1;
      count++;
      if (i >= covered) { value += this.total[i]; covered = this.end[i]; }
    }
    return { marks, share: this.grandTotal ? value / this.grandTotal : 0, value, count };
  }

  // commonAncestor is the deepest node holding all of nodes.
  commonAncestor(nodes) {
    if (!nodes.length) return 0;
    let a = nodes[0];
    for (const b of nodes) while (!this.isAncestor(a, b)) a = this.parent[a];
    return a;
  }

  // filtered keeps what pprof's -focus and -ignore would: with focus, the
  // stacks through a frame it matches; without ignore's frames and all
  // they called. Tests take a function name; either may be null. Totals
  // are recomputed; nodes left with nothing go.
  filtered(focus, ignore) {
    const n = this.n, self = new Float64Array(n), total = new Float64Array(n);
    const under = new Uint8Array(n), dropped = new Uint8Array(n);
    for (let i = 1; i < n; i++) {
      const p = this.parent[i], name = this.nameOf(i), group = this.isGroup(i);
      under[i] = !focus || under[p] || (!group && focus(name)) ? 1 : 0;
      dropped[i] = dropped[p] || (ignore && !group && ignore(name)) ? 1 : 0;
      self[i] = under[i] && !dropped[i] ? this.self[i] : 0;
    }
    for (let i = 0; i < n; i++) total[i] = self[i];
    for (let i = n - 1; i > 0; i--) total[this.parent[i]] += total[i];
    const keep = [], newIndex = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) if (i === 0 || total[i] > 0) { newIndex[i] = keep.length; keep.push(i); }
    const pick = (arr) => keep.map((i) => arr[i]);
    const t = new Tree(this.strings, keep.map((i) => (i === 0 ? -1 : newIndex[this.parent[i]])), pick(this.name), pick(this.file),
      pick(this.binary), pick(self), pick(total), this.unit, pick(this.line));
    t.setGroups(this.groupBy, [...(this.groups || new Map()).values()]);
    return t;
  }

  // sandwich builds the trees of a function's callers (the function at the
  // root, its callers as children) and callees (all its outermost frames'
  // subtrees merged).
  sandwich(key) {
    const occs = this.occurrences(key);
    if (!occs.length) return null;
    const callers = new TreeBuilder(this, occs[0]), callees = new TreeBuilder(this, occs[0]);
    for (const occ of occs) {
      const path = [];
      for (let i = this.parent[occ]; i > 0; i = this.parent[i]) path.push(i);
      callers.addPath(path, this.total[occ]);
      const mapped = new Map([[occ, 0]]);
      for (let j = occ; j < this.end[occ]; j++) {
        const b = j === occ ? 0 : callees.child(mapped.get(this.parent[j]), j);
        mapped.set(j, b);
        callees.addSelf(b, this.self[j]);
      }
    }
    return { callers: callers.build(), callees: callees.build() };
  }
}

// TreeBuilder merges paths of a source tree's nodes, by function name, into
// a new Tree whose root is named like source node rootNode.
class TreeBuilder {
  constructor(src, rootNode) {
    this.src = src;
    this.nodeName = [src.name[rootNode]];
    this.nodeFile = [src.file[rootNode]];
    this.nodeLine = [src.line[rootNode]];
    this.nodeBinary = [src.binary[rootNode]];
    this.self = [0];
    this.kids = [new Map()];
  }

  // child is the builder node under b for source node j: one per function
  // (name and binary).
  child(b, j) {
    const key = this.src.name[j] * 4194304 + this.src.binary[j];
    let c = this.kids[b].get(key);
    if (c === undefined) {
      c = this.self.length;
      this.kids[b].set(key, c);
      this.kids.push(new Map());
      this.nodeName.push(this.src.name[j]);
      this.nodeFile.push(this.src.file[j]);
      this.nodeLine.push(this.src.line[j]);
      this.nodeBinary.push(this.src.binary[j]);
      this.self.push(0);
    }
    return c;
  }

  addSelf(b, v) { this.self[b] += v; }

  addPath(srcNodes, value) {
    let b = 0;
    for (const j of srcNodes) b = this.child(b, j);
    this.self[b] += value;
  }

  build() {
    const n = this.self.length;
    const total = Float64Array.from(this.self);
    // Children were made after their parents: sum totals backwards.
    const parentOf = new Int32Array(n).fill(-1);
    for (let b = 0; b < n; b++) for (const c of this.kids[b].values()) parentOf[c] = b;
    for (let b = n - 1; b > 0; b--) total[parentOf[b]] += total[b];
    const parent = [], name = [], file = [], line = [], binary = [], self = [], tot = [];
    const stack = [[0, -1]];
    while (stack.length) {
      const [b, p] = stack.pop();
      const i = parent.length;
      parent.push(p); name.push(this.nodeName[b]); file.push(this.nodeFile[b]); line.push(this.nodeLine[b]); binary.push(this.nodeBinary[b]);
      self.push(this.self[b]); tot.push(total[b]);
      const kids = [...this.kids[b].values()].sort((x, y) => total[x] - total[y]); // smallest pushed first
      for (const c of kids) stack.push([c, i]);
    }
    return new Tree(this.src.strings, parent, name, file, binary, self, tot, this.src.unit, line);
  }
}

// diffTree merges target and base into one tree of both ranges' frames,
// those only in the base (which disappeared) included. Frames match by
// their path (function name and binary file name, so that a redeploy to a
// new folder still matches); siblings that match the same key (the same
// function from two builds of one binary) are summed on both sides, so that
// each is compared like with like.
//
// Values are shares of each range's own total, so that ranges of different
// lengths or load compare: after[i] and before[i] are node i's total share
// in the target and the base, afterSelf and beforeSelf its self shares. A
// node's width (its total) is the mean of its two shares, which nests as
// totals must (the mean of sums is the sum of means), and keeps a frame
// that vanished as wide as half its old share. maxAbs is the largest change.
export function diffTree(target, base) {
  const strings = target.strings.slice();
  const index = new Map(strings.map((s, i) => [s, i]));
  const str = (s) => {
    let i = index.get(s);
    if (i === undefined) { i = strings.length; strings.push(s); index.set(s, i); }
    return i;
  };
  // The union's nodes, in order of creation; kids by key under each.
  const u = { parent: [-1], name: [target.name[0]], file: [0], line: [0], binary: [0],
    after: [0], before: [0], afterSelf: [0], beforeSelf: [0], kids: [new Map()] };
  const add = (t, total, self) => {
    const all = t.grandTotal;
    if (!all) return;
    const of = new Int32Array(t.n); // union node of each of t's nodes
    total[0] = 1;
    for (let i = 1; i < t.n; i++) {
      const p = of[t.parent[i]], name = t.nameOf(i), bin = t.binaryOf(i);
      const key = name + "\u0000" + bin.slice(bin.lastIndexOf("/") + 1);
      let k = u.kids[p].get(key);
      if (k === undefined) {
        k = u.parent.length;
        u.kids[p].set(key, k);
        u.parent.push(p); u.name.push(str(name)); u.file.push(str(t.fileOf(i))); u.line.push(t.line[i]);
        u.binary.push(str(bin)); u.after.push(0); u.before.push(0); u.afterSelf.push(0); u.beforeSelf.push(0);
        u.kids.push(new Map());
      }
      of[i] = k;
      total[k] += t.total[i] / all;
      self[k] += t.self[i] / all;
    }
  };
  add(target, u.after, u.afterSelf);
  add(base, u.before, u.beforeSelf);
  // Emit in pre-order, siblings widest first.
  const width = (k) => (u.after[k] + u.before[k]) / 2;
  const out = { parent: [], name: [], file: [], line: [], binary: [], self: [], total: [],
    after: [], before: [], afterSelf: [], beforeSelf: [] };
  const stack = [[0, -1]];
  while (stack.length) {
    const [k, p] = stack.pop();
    const i = out.parent.length;
    out.parent.push(p);
    for (const f of ["name", "file", "line", "binary", "after", "before", "afterSelf", "beforeSelf"]) out[f].push(u[f][k]);
    out.self.push((u.afterSelf[k] + u.beforeSelf[k]) / 2);
    out.total.push(width(k));
    const kids = [...u.kids[k].values()].sort((x, y) => width(x) - width(y) || y - x); // narrowest pushed first
    for (const c of kids) stack.push([c, i]);
  }
  const t = new Tree(strings, out.parent, out.name, out.file, out.binary, out.self, out.total, "share", out.line);
  t.after = Float64Array.from(out.after);
  t.before = Float64Array.from(out.before);
  t.afterSelf = Float64Array.from(out.afterSelf);
  t.beforeSelf = Float64Array.from(out.beforeSelf);
  let maxAbs = 0;
  for (let i = 1; i < t.n; i++) maxAbs = Math.max(maxAbs, Math.abs(t.after[i] - t.before[i]));
  t.maxAbs = maxAbs;
  // Full colour at the 90th percentile of the changes, not the largest:
  // one big change no longer greys out every other.
  const changes = [];
  for (let i = 1; i < t.n; i++) { const d = Math.abs(t.after[i] - t.before[i]); if (d >= 1e-4) changes.push(d); }
  changes.sort((a, b) => a - b);
  t.colourScale = changes.length ? Math.max(changes[Math.floor(changes.length * 0.9)], 0.002) : 0;
  t.setGroups(target.groupBy || base.groupBy, [...(target.groups || new Map()).values()]);
  return t;
}

// functionKey is how the page names a function in links and state: its
// name and its binary's file name, "main @app" ("main" when unknown).
export function functionKey(name, binary) {
  return binary ? name + " @" + binary.slice(binary.lastIndexOf("/") + 1) : name;
}

// splitKey undoes functionKey: [name, binary file name].
export function splitKey(key) {
  const at = key.lastIndexOf(" @");
  return at < 0 ? [key, ""] : [key.slice(0, at), key.slice(at + 2)];
}

// filterFrames is t with focus and ignore (regular expressions over
// function names, pprof's -focus and -ignore; "" for none) applied,
// computed once per tree and expressions. A diff is drawn whole.
let filterMemo = {};
export function filterFrames(t, focus, ignore) {
  const re = (v) => { if (!v) return null; try { const r = new RegExp(v); return (s) => r.test(s); } catch { return null; } };
  const f = re(focus), i = re(ignore);
  if ((!f && !i) || t.after) return t;
  if (filterMemo.t !== t || filterMemo.f !== focus || filterMemo.i !== ignore) {
    filterMemo = { t, f: focus, i: ignore, out: t.filtered(f, i) };
  }
  return filterMemo.out;
}
