#!/usr/bin/env bash
# The daemon's steady cost, for docs/benchmarks.md: CPU time (share of one
# core) and memory (RSS plus its BPF maps) of `ember daemon` at 99 Hz while
# every CPU is busy, measured after a warm-up so start-up work is excluded.
# Run as root from the repository root:
#   bench/daemon-overhead.sh [measure-seconds] [warmup-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
warm=${2:-30}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember" ./cmd/ember
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data"' EXIT

for _ in $(seq "$(nproc)"); do timeout "$((secs + warm + 10))" sh -c 'while :; do :; done' & done
"$out/ember" daemon --data-dir "$data" --listen 127.0.0.1:0 --frequency 99 --interval 10s --log-level info >"$out/daemon.log" 2>&1 &
daemon=$!
sleep "$warm"

ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
max_rss=0
for _ in $(seq "$((secs / 5))"); do
  sleep 5
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon/status")
  [ "$rss" -gt "$max_rss" ] && max_rss=$rss
done
t1=$(ticks)
anon=$(awk '/^RssAnon/ {print $2}' "/proc/$daemon/status")
file=$(awk '/^RssFile/ {print $2}' "/proc/$daemon/status")
# Every BPF map the daemon holds, from its own file descriptors (map ids
# counted once), so maps added later are counted without naming them here.
maps=$(for fd in /proc/"$daemon"/fdinfo/*; do
  awk '/^map_id:/ {id = $2} /^memlock:/ {m = $2} END {if (id != "") print id, m}' "$fd" 2>/dev/null
done | sort -u | awk '{s += $2} END {print s + 0}')
kill -TERM "$daemon"; wait "$daemon" || true
store=$(du -sb "$data" | cut -f1)

awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v s="$secs" -v rss="$max_rss" -v maps="$maps" -v store="$store" -v anon="$anon" -v file="$file" 'BEGIN {
  cpu = (t1 - t0) / hz
  printf "daemon CPU: %.2f s over %d s = %.2f%% of one core (both CPUs busy, 99 Hz)\n", cpu, s, 100 * cpu / s
  printf "daemon memory: peak RSS %.1f MiB + BPF maps %.1f MiB = %.1f MiB\n", rss / 1024, maps / 1048576, rss / 1024 + maps / 1048576
  printf "RSS at the end: %.1f MiB anonymous + %.1f MiB file-backed (mapped files, reclaimable)\n", anon / 1024, file / 1024
  printf "store after the run: %.1f MiB\n", store / 1048576
}'
grep -c "level=ERROR" "$out/daemon.log" | xargs echo "errors logged:"
