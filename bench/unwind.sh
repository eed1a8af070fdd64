#!/usr/bin/env bash
# Unwinding figures for docs/benchmarks.md ("Unwinding"):
#  1. complete user stacks of the testdata/unwind programs (built without
#     frame pointers, calling through Debian's libc) as `ember record`
#     sees them, against `perf record --call-graph dwarf` on the same
#     program: share of samples whose stack reaches _start, and how much of
#     the two stack distributions overlap;
#  2. the BPF program's cost per sample with ~32-frame stacks (two
#     chain-nofp processes keep both CPUs busy), DWARF unwinding against the
#     kernel's frame-pointer walk on the frame-pointer build;
#  3. unwind tables for every running process's executable mappings, and
#     the build time of libLLVM's table.
# Run as root from anywhere: bench/unwind.sh [seconds-per-run] [cost-runs]
# UNWIND_BENCH_BASELINE=BINARY adds, in part 2, a DWARF run of another ember
# build right after each run of this one, for comparing two versions;
# UNWIND_BENCH_DEPTHS="8 100" adds runs on testdata/hotspot/deep at those
# depths (levels of recursion), both walks. Beside each run, bench/bpffloor
# samples with the cheapest programs (return at once; bump a counter) at the
# same rate, a reference through the same seconds (UNWIND_BENCH_FLOOR=0: not).
# (about 5 + 3 * cost-runs runs of seconds-per-run, plus perf script time)
# Needs: perf (linux-perf), bpftool, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
runs=${2:-3}
parts=" ${UNWIND_BENCH_PARTS:-1 2 3} " # e.g. UNWIND_BENCH_PARTS=2 for the cost alone
hz=${UNWIND_BENCH_HZ:-99}           # sampling rate of the cost runs
out=bench/out/unwind
mkdir -p "$out"
go build -o bench/out/ember ./cmd/ember
go build -o bench/out/bpfcost ./bench/bpfcost
go build -o bench/out/bpffloor ./bench/bpffloor
ember=bench/out/ember
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

if [[ $parts == *" 1 "* ]]; then
echo "== 1. complete stacks, ${secs} s at 99 Hz per program and profiler ($(uname -r))"
for f in qsort-nofp qsort-fp chain-nofp sort-cpp sort-rust; do
	bin=testdata/unwind/$f
	"$bin" $((2 * secs + 10)) &
	pid=$!
	sleep 0.5
	"$ember" record -p "$pid" -F 99 -d "${secs}s" --format folded -o "$out/$f.ember.folded" 2>"$out/$f.ember.log"
	perf record -q -F 99 --call-graph dwarf,16384 -p "$pid" -o "$out/$f.perf.data" -- sleep "$secs" 2>/dev/null
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	perf script -i "$out/$f.perf.data" -F comm,ip,sym 2>/dev/null >"$out/$f.perf.txt"
	python3 - "$f" "$out/$f.ember.folded" "$out/$f.perf.txt" <<'PY'
import collections, re, sys
name, ember_path, perf_path = sys.argv[1:]

def norm(sym):
    # The two name a few libc internals differently: drop GCC's clone
    # suffixes, glibc's internal aliases and perf's inline marks.
    sym = sym.replace(" (inlined)", "")
    sym = re.sub(r"\.(part|isra|constprop|cold)\.\d+", "", sym)
    sym = re.sub(r"^__GI_+", "", sym)
    return re.sub(r"(^|::)_+", r"\1", sym)

def collapse(frames):
    # Each symbolizer expands inlined calls its own way, which changes how
    # often a recursive function repeats: compare runs of one function as one.
    out = []
    for f in frames:
        if not out or out[-1] != f:
            out.append(f)
    return tuple(out)

def ember():
    stacks = collections.Counter()
    for line in open(ember_path):
        frames, _, count = line.rstrip("\n").rpartition(" ")
        frames = frames.split(";")[1:]  # drop comm; root first
        stacks[collapse(norm(f) for f in frames if not f.endswith("_[k]"))] += int(count)
    return stacks

def perf():
    stacks, frames = collections.Counter(), None
    for line in open(perf_path):
        if not line.strip():
            if frames is not None:
                stacks[collapse(norm(f) for f in reversed(frames))] += 1
            frames = None
        elif line[0] in " \t":
            parts = line.split(None, 1)
            frames.append(parts[1].strip() if len(parts) > 1 else "[unknown]")
        else:
            frames = []
    if frames:
        stacks[collapse(norm(f) for f in reversed(frames))] += 1
    # perf keeps kernel frames of samples in syscalls: drop them.
    out = collections.Counter()
    for s, n in stacks.items():
        out[collapse(f for f in s if not f.startswith(("entry_SYSCALL", "do_syscall", "x64_sys", "asm_")))] += n
    return out

def complete(stacks):
    total = sum(stacks.values())
    good = sum(n for s, n in stacks.items() if s and s[0] == norm("_start") and "main" in s and "[truncated]" not in s)
    return good, total

e, p = ember(), perf()
eg, et = complete(e)
pg, pt = complete(p)
# Overlap of the two distributions: 100% when every stack has the same share.
overlap = sum(min(n / et, p[s] / pt) for s, n in e.items()) if et and pt else 0
print(f"{name:11s} ember {eg}/{et} = {100*eg/max(et,1):.2f}% complete   perf --call-graph dwarf {pg}/{pt} = {100*pg/max(pt,1):.2f}%   same stacks: {100*overlap:.1f}%")
print(f"{'':11s} (same stacks: the share of samples the two give the same chain of functions, runs of one function counted once)")
PY
	tail -1 "$out/$f.ember.log" | sed 's/^/            /'
done

fi

if [[ $parts == *" 2 "* ]]; then
echo "== 2. BPF program cost per sample, ~32-frame stacks, both CPUs busy, ${secs} s per run at ${hz} Hz"
# run_cnt counts every sample on the host, and with --pid most of them (other
# processes, idle) take the short filtered path. A run against a sleeping
# process measures that path; the cost of a walked sample is then
# (run_time - filtered_runs * filtered_cost) / walked samples.
prev=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -q kernel.bpf_stats_enabled=1
cost() { # mode binary|sleep [ember]
	local a b ember=${3:-$ember}
	bpftool prog show name sample --json >"$out/prog-before.json" 2>/dev/null || echo '[]' >"$out/prog-before.json"
	# bpfcost follows the new program in half-second windows: on this VM the
	# cost moves by 2-3x from window to window, which a run's mean hides.
	bench/out/bpfcost -after "$(bpftool prog show --json | python3 -c 'import json,sys; print(max([p["id"] for p in json.load(sys.stdin)] or [0]))')" \
		-for $((secs - 4))s -every 500ms >"$out/windows.txt" 2>&1 &
	local follow=$!
	if [ "$2" = sleep ]; then
		sleep $((secs + 10)) &
		a=$!
		b=$a
	elif [[ $2 == deep:* ]]; then # testdata/hotspot/deep at that many levels
		testdata/hotspot/deep $((secs + 10)) "${2#deep:}" &
		a=$!
		testdata/hotspot/deep $((secs + 10)) "${2#deep:}" &
		b=$!
	else
		"testdata/unwind/$2" $((secs + 10)) &
		a=$!
		"testdata/unwind/$2" $((secs + 10)) &
		b=$!
	fi
	"$ember" record --unwind "$1" -p "$a,$b" -F "$hz" -d "${secs}s" -o /dev/null 2>"$out/cost.log" &
	local rec=$!
	# The cheapest programs, sampling beside it through the same seconds.
	local floor=
	if [ "$2" != sleep ] && [ "${UNWIND_BENCH_FLOOR:-1}" = 1 ]; then
		(sleep 2 && bench/out/bpffloor -hz "$hz" -for $((secs - 6))s >"$out/floor.txt" 2>&1) &
		floor=$!
	fi
	sleep $((secs - 3))
	bpftool prog show name sample --json >"$out/prog.json"
	bpftool map show --json >"$out/maps.json"
	wait "$follow" || true
	[ -z "$floor" ] || wait "$floor" || true
	wait "$rec" || true
	kill "$a" "$b" 2>/dev/null || true
	wait "$a" "$b" 2>/dev/null || true
	python3 - "$1" "$2" "$out/prog.json" "$out/maps.json" "$out/prog-before.json" "$out/cost.log" "$out/filtered-ns" "$out/windows.txt" <<'PY'
import json, re, sys
mode, binary = sys.argv[1:3]
def load(path):
    v = json.load(open(path))
    return v if isinstance(v, list) else [v]
progs = load(sys.argv[3])
maps = {m["id"]: m for m in json.load(open(sys.argv[4]))}
# Other sessions may run ember too: this run's program is the busiest of
# those loaded since it started.
before = {p["id"] for p in load(sys.argv[5])}
progs = sorted((p for p in progs if p["id"] not in before), key=lambda p: -p.get("run_cnt", 0))[:1]
summary = open(sys.argv[6]).read().strip().splitlines()[-1]
m = re.search(r"ember: (\d+) samples in ([\d.]+)s .*?\((\d+) taken", summary)
recorded, secs, taken = (int(m.group(1)), float(m.group(2)), int(m.group(3))) if m else (0, 1, 1)
for p in progs:
    n, ns = p.get("run_cnt", 0), p.get("run_time_ns", 0)
    mem = sum(maps[i].get("bytes_memlock", 0) for i in p.get("map_ids", []) if i in maps)
    if not n:
        continue
    if binary == "sleep":
        open(sys.argv[7], "w").write(str(ns / n))
        print(f"filtered path (pid filter, a sleeping process): {n} runs, {ns/n/1000:.2f} us per run")
        continue
    walked = recorded * n / taken  # the snapshot is taken before the run ends
    filtered_ns = float(open(sys.argv[7]).read())
    per = (ns - (n - walked) * filtered_ns) / walked if walked else 0
    print(f"--unwind {mode:5s} on {binary:10s}: {n} runs, {ns/n/1000:.2f} us per run; ~{walked:.0f} walked samples at {per/1000:.2f} us each; BPF maps {mem/2**20:.1f} MiB")
    # The same correction for the filtered runs, on the half-second windows.
    w = dict(re.findall(r"(\w+) ([\d.]+)", open(sys.argv[8]).read()))
    if "median_ns" in w and walked:
        share = walked / n
        fix = lambda x: (float(x) - (1 - share) * filtered_ns) / share / 1000
        print(f"    per walked sample in {w['windows']} half-second windows: median {fix(w['median_ns']):.2f} us, p10 {fix(w['p10_ns']):.2f}, p90 {fix(w['p90_ns']):.2f}, max {fix(w['max_ns']):.2f}; a fixed loop took {w['loop_us']} us of CPU, a memory step {w['chase_ns']} ns")
PY
	[ "$2" = sleep ] || tail -1 "$out/cost.log" | sed 's/^/            /'
	[ -z "$floor" ] || awk '/ns_per_run/ { printf "%s%s %.2f us per run", (n++ ? ", " : "    beside it: "), $1, $5 / 1000 } END { if (n) print "" }' "$out/floor.txt"
}
# The cheapest programs alone, sampling the same two busy processes.
floor_alone() {
	testdata/unwind/chain-nofp $((secs + 5)) &
	local a=$!
	testdata/unwind/chain-nofp $((secs + 5)) &
	local b=$!
	sleep 2
	bench/out/bpffloor -hz "$hz" -for $((secs - 6))s |
		awk '/ns_per_run/ { printf "%s%s %.2f us per run", (n++ ? ", " : "alone: "), $1, $5 / 1000 } END { if (n) print "" }'
	kill "$a" "$b" 2>/dev/null || true
	wait "$a" "$b" 2>/dev/null || true
}
for _ in $(seq "$runs"); do
	[ "${UNWIND_BENCH_FLOOR:-1}" != 1 ] || floor_alone
	cost dwarf sleep
	cost dwarf chain-nofp
	if [ -n "${UNWIND_BENCH_BASELINE:-}" ]; then
		echo "baseline $UNWIND_BENCH_BASELINE:"
		cost dwarf chain-nofp "$UNWIND_BENCH_BASELINE"
	fi
	cost fp chain-fp
	# UNWIND_BENCH_DEPTHS="8 100": the same at other depths (deep has frame
	# pointers and CFI, so both walks follow it), for the cost of a frame.
	for d in ${UNWIND_BENCH_DEPTHS:-}; do
		cost dwarf "deep:$d"
		cost fp "deep:$d"
	done
done
sysctl -q kernel.bpf_stats_enabled="$prev"

fi

if [[ $parts == *" 3 "* ]]; then
echo "== 3. unwind tables"
go run ./bench/unwindtables -procs
go test -run XXX -bench BuildLibLLVM -benchtime 3x ./collector/unwind | grep Benchmark
fi
