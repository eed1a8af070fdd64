#!/usr/bin/env bash
# Measures what sampling the whole host costs, for docs/benchmarks.md:
#  - ember record's own CPU time and peak RSS over a run at 99 Hz with both
#    CPUs busy, beside perf record -F 99 -a -g and bpftrace profile:hz:99 on
#    the same workload;
#  - the BPF sampling program's average run time per sample (kernel BPF stats);
#  - the memory of ember's BPF maps.
# Run as root from the repository root: bench/record-overhead.sh [seconds]
# Needs: perf (linux-perf), bpftrace, bpftool, GNU time (package time).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember" ./cmd/ember

busy() { # keep every CPU busy for the whole run
  for _ in $(seq "$(nproc)"); do timeout "$((secs + 5))" sh -c 'while :; do :; done' & done
}

measure() { # name, command...: prints CPU seconds (user+sys) and peak RSS of the command
  local name=$1; shift
  busy
  sleep 1
  /usr/bin/time -f "%U %S %M" -o "$out/$name.time" "$@" >"$out/$name.log" 2>&1 || true
  wait
  read -r user sys rss <"$out/$name.time"
  awk -v n="$name" -v u="$user" -v s="$sys" -v r="$rss" -v d="$secs" 'BEGIN {
    printf "%-10s cpu %6.2f s (%.2f%% of one core over %d s)  peak RSS %6.1f MiB\n", n, u+s, 100*(u+s)/d, d, r/1024 }'
}

echo "== $secs s at 99 Hz with all $(nproc) CPUs busy ($(uname -r))"
measure ember "$out/ember" record -F 99 -d "${secs}s" -o "$out/ember.pb.gz"
tail -1 "$out/ember.log"
measure perf perf record -F 99 -a -g -o "$out/perf.data" -- sleep "$secs"
measure bpftrace bpftrace -e "profile:hz:99 { @[kstack, ustack, comm] = count(); } interval:s:$secs { exit(); }"

echo "== BPF program cost per sample (kernel.bpf_stats_enabled=1)"
prev=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -q kernel.bpf_stats_enabled=1
busy
"$out/ember" record -F 99 -d "${secs}s" -o /dev/null >"$out/bpf-stats.log" 2>&1 &
ember=$!
sleep "$((secs - 5))"
bpftool prog show name sample --json >"$out/prog.json"
bpftool map show --json >"$out/maps.json"
wait "$ember" || true
wait
sysctl -q kernel.bpf_stats_enabled="$prev"
python3 - "$out/prog.json" "$out/maps.json" <<'PY'
import json, sys
progs = json.load(open(sys.argv[1]))
progs = progs if isinstance(progs, list) else [progs]
for p in progs:
    n, ns = p.get("run_cnt", 0), p.get("run_time_ns", 0)
    if n:
        print(f"sample program: {n} runs, {ns/n/1000:.2f} us per sample on average")
names = {"counts_0", "counts_1", "stacks_0", "stacks_1", "stats", "pid_filter", "seen_pids", "events"}
total = 0
for m in json.load(open(sys.argv[2])):
    if m.get("name") in names:
        total += m.get("bytes_memlock", 0)
print(f"ember BPF maps: {total/2**20:.1f} MiB (bytes_memlock as bpftool reports it)")
PY
