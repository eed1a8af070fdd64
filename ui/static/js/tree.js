// The call tree as the views use it: the API's parallel arrays (see
// FlameGraph in web/flamegraph.go) in typed arrays, laid out once, plus the
// derived trees and tables (search, top functions, sandwich, diff), all
// computed in the browser from the one tree the API sent.

export class Tree {
  // Nodes are in pre-order, parents before children, siblings largest
  // first: a node's subtree is the index range [i, end[i]).
  constructor(strings, parent, name, file, binary, self, total, unit) {
    this.strings = strings;
    this.n = parent.length;
    this.parent = Int32Array.from(parent);
    this.name = Int32Array.from(name);
    this.file = Int32Array.from(file);
    this.binary = Int32Array.from(binary);
    this.self = Float64Array.from(self);
    this.total = Float64Array.from(total);
    this.unit = unit || "nanoseconds";
    this.layout();
  }

  static fromAPI(fg) {
    const n = fg.nodes;
    if (!n.parent.length) {
      return new Tree(["", "root"], [-1], [1], [0], [0], [0], [0], fg.unit);
    }
    return new Tree(fg.strings, n.parent, n.name, n.file, n.binary, n.self, n.total, fg.unit);
  }

  // layout gives every node its depth, its offset from the left in value
  // units, and the end of its subtree.
  layout() {
    const n = this.n;
    this.depth = new Int32Array(n);
    this.x = new Float64Array(n);
    this.end = new Int32Array(n);
    const next = new Float64Array(n); // where the next child of a node starts
    let maxDepth = 0;
    for (let i = 1; i < n; i++) {
      const p = this.parent[i];
      this.depth[i] = this.depth[p] + 1;
      this.x[i] = next[p] + this.x[p];
      next[p] += this.total[i];
      if (this.depth[i] > maxDepth) maxDepth = this.depth[i];
    }
    for (let i = 0; i < n; i++) this.end[i] = i + 1;
    for (let i = n - 1; i > 0; i--) {
      const p = this.parent[i];
      if (this.end[i] > this.end[p]) this.end[p] = this.end[i];
    }
    this.maxDepth = maxDepth;
  }

  nameOf(i) { return this.strings[this.name[i]]; }
  fileOf(i) { return this.strings[this.file[i]]; }
  binaryOf(i) { return this.strings[this.binary[i]]; }
  get grandTotal() { return this.total[0]; }

  // pathOf lists the names from the root's first child down to i.
  pathOf(i) {
    const out = [];
    for (; i > 0; i = this.parent[i]) out.push(this.nameOf(i));
    return out.reverse();
  }

  // findPath follows names from the root; it returns the deepest node
  // reached, so a path that no longer exists still lands near its place.
  findPath(names) {
    let node = 0;
    for (const want of names) {
      let found = -1;
      for (let c = node + 1; c < this.end[node]; c = this.end[c]) {
        if (this.nameOf(c) === want) { found = c; break; }
      }
      if (found < 0) break;
      node = found;
    }
    return node;
  }

  isAncestor(a, b) { return a <= b && b < this.end[a]; }

  // matches marks the nodes whose name passes test, and returns with the
  // marks the share of all value under a marked node (nested matches count
  // once).
  matches(test) {
    const marks = new Uint8Array(this.n);
    const cache = new Map(); // by string index: names repeat
    let covered = 0, value = 0, count = 0;
    for (let i = 1; i < this.n; i++) {
      const s = this.name[i];
      let m = cache.get(s);
      if (m === undefined) { m = test(this.strings[s]); cache.set(s, m); }
      if (!m) continue;
      marks[i] = 1;
      count++;
      if (i >= covered) { value += this.total[i]; covered = this.end[i]; }
    }
    return { marks, share: this.grandTotal ? value / this.grandTotal : 0, value, count };
  }

  // functions sums self and total per function name. Total counts a
  // recursive function once per stack: only its outermost frames add.
  functions() {
    const self = new Map(), total = new Map();
    const onStack = new Int32Array(this.strings.length);
    const stack = [];
    for (let i = 1; i < this.n; i++) {
      const p = this.parent[i];
      while (stack.length && stack[stack.length - 1] !== p) onStack[this.name[stack.pop()]]--;
      const s = this.name[i];
      self.set(s, (self.get(s) || 0) + this.self[i]);
      if (onStack[s] === 0) total.set(s, (total.get(s) || 0) + this.total[i]);
      onStack[s]++;
      stack.push(i);
    }
    const out = [];
    for (const [s, t] of total) out.push({ nameIndex: s, name: this.strings[s], self: self.get(s) || 0, total: t });
    return out;
  }

  // occurrences lists the outermost nodes named nameIndex.
  occurrences(nameIndex) {
    const out = [];
    for (let i = 1; i < this.n; i++) {
      if (this.name[i] === nameIndex) { out.push(i); i = this.end[i] - 1; }
    }
    return out;
  }

  // commonAncestor is the deepest node holding all of nodes.
  commonAncestor(nodes) {
    if (!nodes.length) return 0;
    let a = nodes[0];
    for (const b of nodes) while (!this.isAncestor(a, b)) a = this.parent[a];
    return a;
  }

  // sandwich builds the trees of a function's callers (the function at the
  // root, its callers as children) and callees (all its outermost frames'
  // subtrees merged).
  sandwich(nameIndex) {
    const occs = this.occurrences(nameIndex);
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
    this.nodeBinary = [src.binary[rootNode]];
    this.self = [0];
    this.kids = [new Map()];
  }

  // child is the builder node under b for source node j.
  child(b, j) {
    const key = this.src.name[j];
    let c = this.kids[b].get(key);
    if (c === undefined) {
      c = this.self.length;
      this.kids[b].set(key, c);
      this.kids.push(new Map());
      this.nodeName.push(key);
      this.nodeFile.push(this.src.file[j]);
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
    const parent = [], name = [], file = [], binary = [], self = [], tot = [];
    const stack = [[0, -1]];
    while (stack.length) {
      const [b, p] = stack.pop();
      const i = parent.length;
      parent.push(p); name.push(this.nodeName[b]); file.push(this.nodeFile[b]); binary.push(this.nodeBinary[b]);
      self.push(this.self[b]); tot.push(total[b]);
      const kids = [...this.kids[b].values()].sort((x, y) => total[x] - total[y]); // smallest pushed first
      for (const c of kids) stack.push([c, i]);
    }
    return new Tree(this.src.strings, parent, name, file, binary, self, tot, this.src.unit);
  }
}

// diffShares matches target's nodes to base's by their path of frames
// (function name and binary file name, so that a redeploy to a new folder
// still matches) and returns, per target node, the share of the total the
// same path had in the base and has in the target. Siblings that match the
// same key (the same function from two builds of one binary) are summed on
// both sides, so that each is compared like with like.
export function diffShares(target, base) {
  const ids = new Map();
  const idsOf = (t) => {
    const out = new Int32Array(t.n);
    for (let i = 1; i < t.n; i++) {
      const key = out[t.parent[i]] + "\u0000" + t.nameOf(i) + "\u0000" + t.binaryOf(i).split("/").pop();
      let id = ids.get(key);
      if (id === undefined) { id = ids.size + 1; ids.set(key, id); }
      out[i] = id;
    }
    return out;
  };
  const sharesByID = (t, tids) => {
    const m = new Map(), all = t.grandTotal || 1;
    for (let i = 1; i < t.n; i++) m.set(tids[i], (m.get(tids[i]) || 0) + t.total[i] / all);
    return m;
  };
  const baseIDs = idsOf(base), targetIDs = idsOf(target);
  const baseShare = sharesByID(base, baseIDs), targetShare = sharesByID(target, targetIDs);
  const before = new Float64Array(target.n), after = new Float64Array(target.n);
  let maxAbs = 0;
  before[0] = 1; after[0] = 1;
  for (let i = 1; i < target.n; i++) {
    after[i] = targetShare.get(targetIDs[i]);
    before[i] = baseShare.get(targetIDs[i]) || 0;
    maxAbs = Math.max(maxAbs, Math.abs(after[i] - before[i]));
  }
  return { before, after, maxAbs };
}
