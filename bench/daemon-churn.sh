#!/usr/bin/env bash
# The daemon's CPU on a host that starts many short processes, for
# docs/benchmarks.md: two shell loops each start python3 for ~0.2 s of CPU,
# over and over (about ten new processes a second, each mapping python3
# and its libraries), while `ember daemon` samples at 99 Hz; its CPU time
# is read from /proc/PID/stat after a warm-up.
# Run as root from the repository root:
#   bench/daemon-churn.sh [measure-seconds] [warmup-seconds] [ember binary]
# With CPUPROFILE=file, a -tags selfprof build is used instead and its Go CPU
# profile over the measured seconds is written to file
# (go tool pprof -top -cum bench/out/ember-selfprof file).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-90}
warm=${2:-20}
ember=${3:-}
out=bench/out
mkdir -p "$out"
if [ -n "${CPUPROFILE:-}" ]; then
  go build -tags selfprof -o "$out/ember-selfprof" ./cmd/ember
  ember=$out/ember-selfprof
elif [ -z "$ember" ]; then
  go build -o "$out/ember" ./cmd/ember
  ember=$out/ember
fi
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq "$(nproc)"); do
  timeout "$((secs + warm + 10))" sh -c 'while :; do /usr/bin/python3 -c "sum(range(8*10**6))"; done' &
done
"$ember" daemon --data-dir "$data" --listen 127.0.0.1:0 --frequency 99 --interval 10s --log-level warn >"$out/daemon-churn.log" 2>&1 &
daemon=$!
sleep "$warm"
ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
t0=$(ticks)
starts0=$(awk '/^processes/ {print $2}' /proc/stat)
if [ -n "${CPUPROFILE:-}" ]; then
  curl -s -o "$CPUPROFILE" "http://127.0.0.1:6061/debug/pprof/profile?seconds=$secs"
else
  sleep "$secs"
fi
t1=$(ticks)
starts1=$(awk '/^processes/ {print $2}' /proc/stat)
kill -TERM "$daemon"; wait "$daemon" || true
awk -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v s="$secs" -v n="$((starts1 - starts0))" 'BEGIN {
  cpu = (t1 - t0) / hz
  printf "daemon CPU: %.2f s over %d s = %.2f%% of one core, while %d processes started (%.1f a second)\n", cpu, s, 100 * cpu / s, n, n / s
}'
