#!/usr/bin/env bash
# What a part of the sampler costs: builds ember with the BPF program cut
# short at one point (it then records nothing past it) and runs it side by
# side with the whole program (bench/unwind-pair.sh), so both see the same
# seconds of this VM. The ratio is the share of the cost before the cut.
# Run as root: bench/unwind-cut.sh CUT [seconds] [pairs]
#   entry   return after the PID filter and the process's image
#   walk    return after the user stack is walked (no storing, no count)
#   count   return before the count map (stacks stored, not counted)
# Needs clang and bpftool (go generate); builds in a temporary worktree.
set -euo pipefail
cd "$(dirname "$0")/.."
cut=$1 secs=${2:-20} pairs=${3:-3}
case $cut in
entry) anchor='	// Each branch names its maps as constants, which the verifier requires.'
	insert='	if (pid && exec_seq < 1000000) return 0; // cut: entry' ;;
walk) anchor='		if (user) {\n			key.user_stack_source = USER_STACK_UNWOUND;'
	insert='		if (user && pid) return 0; // cut: walk' ;;
count) anchor='	struct sample_value *value = bpf_map_lookup_elem(counts, &key);'
	insert='	if (pid) return 0; // cut: count' ;;
*) echo "unknown cut $cut (entry, walk, count)" >&2; exit 2 ;;
esac
mkdir -p bench/out
out=$PWD/bench/out
tree=$(mktemp -d)
trap 'git worktree remove --force "$tree"' EXIT
# Both builds from the last commit, so that they differ by the cut alone.
git worktree add -q --detach "$tree" HEAD
(cd "$tree" && go build -o "$out/ember-whole" ./cmd/ember)
python3 - "$tree/bpf/sampler.bpf.c" "$anchor" "$insert" <<'PY'
import sys
path, anchor, insert = sys.argv[1], sys.argv[2].replace("\\n", "\n"), sys.argv[3]
s = open(path).read()
if s.count(anchor) != 1:
    sys.exit(f"cut point not found once in {path}: {anchor!r}")
open(path, "w").write(s.replace(anchor, insert + "\n" + anchor))
PY
(cd "$tree" && go generate ./bpf && go build -o "$out/ember-cut-$cut" ./cmd/ember)
bench/unwind-pair.sh "bench/out/ember-cut-$cut" bench/out/ember-whole "$secs" "$pairs"
