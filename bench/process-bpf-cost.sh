#!/usr/bin/env bash
# What the sampler's programs cost per process start, for docs/benchmarks.md:
# `ember daemon` alone, while /bin/true starts about 40 times a second (800
# starts); each program's run time and runs are read from the kernel's BPF
# statistics (kernel.bpf_stats_enabled=1) before and after. Other Ember
# samplers running at the same time are counted too: run it alone.
# Run as root from the repository root:
#   bench/process-bpf-cost.sh [ember binary] [starts]
set -euo pipefail
bin=${1:-bench/out/ember}
starts=${2:-800}
if [ "$bin" = bench/out/ember ]; then
	mkdir -p bench/out
	go build -o bench/out/ember ./cmd/ember
fi
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
sysctl -qw kernel.bpf_stats_enabled=1
"$bin" daemon --data-dir "$data" --listen 127.0.0.1:7099 >"$data/daemon.log" 2>&1 &
daemon=$!
sleep 6
snap() {
	bpftool prog show -j | python3 -c '
import json, sys
names = {"sample", "on_exec", "on_exit", "on_fork", "on_libs_loaded", "on_switch"}
for p in json.load(sys.stdin):
    if p.get("name") in names:
        print(p["name"], p.get("run_time_ns", 0), p.get("run_cnt", 0))'
}
snap >"$data/before"
for _ in $(seq 1 "$starts"); do
	/bin/true
	sleep 0.02
done
snap >"$data/after"
kill "$daemon"
wait "$daemon" 2>/dev/null || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$data/before" "$data/after" <<'PY'
import sys
def read(path):
    out = {}
    for line in open(path):
        name, ns, n = line.split()
        a, b = out.get(name, (0, 0))
        out[name] = (a + int(ns), b + int(n))
    return out
before, after = read(sys.argv[1]), read(sys.argv[2])
total = 0
for name in sorted(after):
    ns = after[name][0] - before.get(name, (0, 0))[0]
    n = after[name][1] - before.get(name, (0, 0))[1]
    total += ns
    if n:
        print(f"  {name:16s} runs {n:6d}  {ns / 1e6:8.2f} ms  {ns / n / 1000:7.2f} us/run")
print(f"  all programs {total / 1e6:.2f} ms")
PY
