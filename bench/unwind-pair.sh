#!/usr/bin/env bash
# Compares the BPF sampling program of two ember builds in the same seconds:
# both record the same two chain-nofp processes (about 32 frames, --unwind
# dwarf, 99 Hz) at once, and bench/bpfcost follows each program's kernel
# stats. On this VM a program's cost moves by up to 3x from one run to the
# next with what the host does, so runs of one build after the other cannot
# tell two versions apart; two programs sampling side by side see the same
# host. Each pair runs twice, once in each start order, since the recorder
# started first measured a little cheaper.
# Run as root: bench/unwind-pair.sh NEW OLD [seconds] [pairs]
# Figures are ns per run of the program, including the ~1% of runs on other
# processes that the PID filter turns away.
set -euo pipefail
cd "$(dirname "$0")/.."
new=$1 old=$2 secs=${3:-20} pairs=${4:-3}
go build -o bench/out/bpfcost ./bench/bpfcost
sysctl -q kernel.bpf_stats_enabled=1
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
maxid() { bpftool prog show --json | python3 -c 'import json,sys; print(max([p["id"] for p in json.load(sys.stdin)] or [0]))'; }
out=bench/out/pair
mkdir -p "$out"

one() { # first second
	testdata/unwind/chain-nofp $((secs + 15)) &
	local a=$!
	testdata/unwind/chain-nofp $((secs + 15)) &
	local b=$!
	local l0 l1
	l0=$(maxid)
	"$1" record --unwind dwarf -p "$a,$b" -F 99 -d $((secs + 8))s -o /dev/null 2>"$out/first.log" &
	local r1=$!
	bench/out/bpfcost -after "$l0" -for 1ms -every 1ms >/dev/null # until its program is loaded
	l1=$(maxid)
	"$2" record --unwind dwarf -p "$a,$b" -F 99 -d $((secs + 6))s -o /dev/null 2>"$out/second.log" &
	local r2=$!
	bench/out/bpfcost -after "$l1" -for 1ms -every 1ms >/dev/null
	sleep 2 # both past loading their tables
	bench/out/bpfcost -after "$l0" -before $((l1 + 1)) -for "${secs}s" >"$out/first.txt" &
	bench/out/bpfcost -after "$l1" -for "${secs}s" >"$out/second.txt"
	wait "$r1" "$r2" || true
	kill "$a" "$b" 2>/dev/null || true
	wait "$a" "$b" 2>/dev/null || true
	python3 - "$1" "$2" "$out/first.txt" "$out/second.txt" <<'PY'
import re, sys
first, second, f1, f2 = sys.argv[1:]
a, b = (dict(re.findall(r"(\w+) ([\d.]+)", open(p).read())) for p in (f1, f2))
print(f"started first {first}: mean {float(a['mean_ns'])/1000:.2f} us, median window {float(a['median_ns'])/1000:.2f}; "
      f"second {second}: mean {float(b['mean_ns'])/1000:.2f} us, median window {float(b['median_ns'])/1000:.2f}; "
      f"memory step {a['chase_ns']} ns")
PY
}

echo "== $new against $old, ${secs} s per pair, $(date -u +%H:%M) UTC, load $(cut -d' ' -f1 /proc/loadavg)"
for _ in $(seq "$pairs"); do
	one "$new" "$old"
	one "$old" "$new"
done | tee "$out/pairs.txt"
python3 - "$new" "$out/pairs.txt" <<'PY'
import re, sys
new = sys.argv[1]
ratios = []
for line in open(sys.argv[2]):
    m = re.match(r"started first (\S+): mean ([\d.]+) .*second (\S+): mean ([\d.]+)", line)
    if not m:
        continue
    x, xv, y, yv = m.group(1), float(m.group(2)), m.group(3), float(m.group(4))
    ratios.append(xv / yv if x == new else yv / xv)
ratios.sort()
print(f"new / old cost per run, {len(ratios)} pairs: median {ratios[len(ratios)//2]:.2f}, from {ratios[0]:.2f} to {ratios[-1]:.2f}; "
      f"new cheaper in {sum(r < 1 for r in ratios)} of {len(ratios)}")
PY
echo "== done $(date -u +%H:%M) UTC, load $(cut -d' ' -f1 /proc/loadavg)"
