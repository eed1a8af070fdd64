#!/usr/bin/env bash
# What --export costs, for docs/benchmarks.md: two daemons side by side at
# 99 Hz and a 10 s interval, one without export and one exporting to both a
# Pyroscope and an OTLP receiver (bench/exportsink, a separate process), with
# their CPU time and peak RSS over the same minutes. Two daemons differ by
# more than export costs for other reasons (which one starts first, what
# each happens to name), so run it in both orders and compare. Run as root
# from the repository root:
#   bench/export-overhead.sh [measure-seconds] [warmup-seconds] [off-first|on-first]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
warm=${2:-30}
order=${3:-off-first}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember" ./cmd/ember
go build -o "$out/exportsink" ./bench/exportsink
off=$(mktemp -d)
on=$(mktemp -d)
# The daemons are waited for before their stores are removed: a daemon whose
# directory vanishes while it stops retries its flushes for ever.
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true; rm -rf "$off" "$on"' EXIT

"$out/exportsink" -pyroscope 127.0.0.1:14040 -otlp 127.0.0.1:14317 >"$out/exportsink.log" 2>&1 &
sink=$!
sleep 1
kill -0 "$sink" 2>/dev/null || { cat "$out/exportsink.log"; echo "exportsink did not start" >&2; exit 1; }
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg), $order"
start_off() {
  "$out/ember" daemon --data-dir "$off" --listen 127.0.0.1:17071 --interval 10s --log-level info >"$out/export-off.log" 2>&1 &
  a=$!
}
start_on() {
  "$out/ember" daemon --data-dir "$on" --listen 127.0.0.1:17072 --interval 10s --log-level info \
    --export pyroscope=http://127.0.0.1:14040 --export otlp=http://127.0.0.1:14317 >"$out/export-on.log" 2>&1 &
  b=$!
}
if [ "$order" = on-first ]; then start_on; start_off; else start_off; start_on; fi
sleep "$warm"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
a0=$(ticks $a); b0=$(ticks $b); t0=$(date +%s.%N)
amax=0; bmax=0
for _ in $(seq "$((secs / 5))"); do
  sleep 5
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$a/status"); [ "$r" -gt "$amax" ] && amax=$r
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$b/status"); [ "$r" -gt "$bmax" ] && bmax=$r
done
a1=$(ticks $a); b1=$(ticks $b); t1=$(date +%s.%N)
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s http://127.0.0.1:17072/metrics | grep '^ember_export_' >"$out/export-metrics.txt" || true
curl -s http://127.0.0.1:17072/readyz >"$out/export-readyz.json" || true
kill -TERM "$a" "$b"; wait "$a" "$b" || true
kill -TERM "$sink"; wait "$sink" || true

# The CPU times are over the seconds that passed, which a loaded host
# stretches beyond $secs (each 5 s step also waits for its reads).
awk -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v am="$amax" -v bm="$bmax" 'BEGIN {
  ca = (a1 - a0) / hz; cb = (b1 - b0) / hz; s = t1 - t0
  printf "export off: CPU %.2f s over %.0f s = %.3f%% of one core, peak RSS %.1f MiB\n", ca, s, 100 * ca / s, am / 1024
  printf "export on:  CPU %.2f s over %.0f s = %.3f%% of one core, peak RSS %.1f MiB\n", cb, s, 100 * cb / s, bm / 1024
  printf "difference: %+.3f%% of one core, %+.1f MiB\n", 100 * (cb - ca) / s, (bm - am) / 1024
}'
cat "$out/exportsink.log"
grep -E 'sent_total|failures|skipped|backlog|lag' "$out/export-metrics.txt" || true
grep -c "level=ERROR" "$out/export-on.log" | xargs echo "errors logged (export on):" || true
