#!/usr/bin/env bash
# The daemon on a busy host, for docs/benchmarks.md: stacks lost, drains
# late, /metrics latency and how long SIGTERM takes, while two busy loops
# and a compile loop (`go build -a std`) load the machine. /metrics is read
# once a second; at the end the daemon gets SIGTERM and the log is checked
# for a lost last interval.
# Run as root from the repository root:
#   bench/daemon-busy.sh [seconds] [ember binary] [no-load]
# With "no-load" the machine's own load is all there is (to compare two
# binaries in turn under the same outside load).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-180}
ember=${2:-}
load=${3:-load}
out=bench/out
mkdir -p "$out"
if [ -z "$ember" ]; then
  go build -o "$out/ember" ./cmd/ember
  ember=$out/ember
fi
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data"' EXIT
if [ "$load" = load ]; then
  for _ in 1 2; do timeout "$((secs + 40))" sh -c 'while :; do :; done' & done
  timeout "$((secs + 40))" sh -c 'while :; do go build -a -o /dev/null std 2>/dev/null; done' &
fi
addr=127.0.0.1:$((20000 + RANDOM % 10000))
"$ember" daemon --data-dir "$data/store" --interval 2s --listen "$addr" --log-level info >"$data/log" 2>&1 &
pid=$!
until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.2; done
start=$(date +%s.%N)
: >"$data/scrapes"
: >"$data/health"
while [ "$(echo "$(date +%s.%N) - $start < $secs" | bc)" = 1 ]; do
  curl -s -o "$data/metrics" -w '%{time_total}\n' --max-time 60 "http://$addr/metrics" >>"$data/scrapes" || echo 60 >>"$data/scrapes"
  # /healthz does no work: its time is what the busy host adds to any request.
  curl -s -o /dev/null -w '%{time_total}\n' --max-time 60 "http://$addr/healthz" >>"$data/health" || echo 60 >>"$data/health"
  sleep 1
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
m=$data/metrics
sum() { awk -v re="$1" '$0 !~ /^#/ && $1 ~ re {s += $2} END {printf "%.0f", s}' "$m"; }
recorded=$(sum '^ember_samples_total\{outcome="recorded"\}')
mapfull=$(sum '^ember_stacks_lost_total\{.*reason="stack map full"')
lost=$(awk '$0 !~ /^#/ && $1 ~ /^ember_stacks_lost_total/ && $1 !~ /kernel thread|process exiting/ {s += $2} END {printf "%.0f", s}' "$m")
drains=$(sum '^ember_drain_seconds_count')
late=$(awk '$1 == "ember_drain_lateness_seconds_count" {c = $2} $1 ~ /^ember_drain_lateness_seconds_bucket\{le="1.024"\}/ {b = $2} END {if (c == "") print "n/a"; else printf "%.0f", c - b}' "$m")
dropped=$(sum '^ember_samples_dropped_total')
pct() { sort -n "$2" | sed -n "$(( ($1 * $(wc -l <"$2") + 99) / 100 ))p"; }
kill -TERM "$pid"
t0=$(date +%s.%N)
wait "$pid" || true
stop=$(echo "$(date +%s.%N) - $t0" | bc)
echo "binary $ember, $(printf %.0f "$elapsed") s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "samples recorded $recorded; stacks lost $lost ($(echo "scale=1; 100 * $lost / $recorded" | bc)%), of which stack map full $mapfull ($(echo "scale=1; 100 * $mapfull / $recorded" | bc)%)"
echo "samples dropped unnamed $dropped ($(echo "scale=1; 100 * $dropped / $recorded" | bc)%)"
echo "drains $drains of $(printf %.0f "$elapsed") expected at --drain-interval 1s (mean period $(echo "scale=2; $elapsed / $drains" | bc) s); drains over 1 s late: $late"
echo "/metrics: $(wc -l <"$data/scrapes") scrapes, p50 $(pct 50 "$data/scrapes") s, p99 $(pct 99 "$data/scrapes") s, max $(pct 100 "$data/scrapes") s"
echo "/healthz: p50 $(pct 50 "$data/health") s, p99 $(pct 99 "$data/health") s, max $(pct 100 "$data/health") s"
echo "stop after SIGTERM: $stop s; last interval lost: $(grep -c 'context canceled\|last interval was not stored' "$data/log" || true)"
grep -E 'TIMING|stopped|behind|caught up' "$data/log" | cut -c1-200 || true
