#!/usr/bin/env bash
# SIGTERM at an interval boundary, repeated, for docs/benchmarks.md: each
# round starts `ember daemon --interval 2s`, lets it sample for a few
# seconds, sends SIGTERM 20 ms after an even second (a boundary, while the
# drain that ends the interval runs), and reports how long the stop took and
# whether an interval was lost (the daemon's own count and log).
# Run as root from the repository root:
#   bench/daemon-stop.sh [rounds] [ember binary]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
ember=${2:-}
out=bench/out
mkdir -p "$out"
if [ -z "$ember" ]; then
  go build -o "$out/ember" ./cmd/ember
  ember=$out/ember
fi
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data"' EXIT
lost=0
slowest=0
for round in $(seq "$rounds"); do
  rm -rf "$data/store"
  "$ember" daemon --data-dir "$data/store" --interval 2s --listen 127.0.0.1:0 --log-level info >"$data/log" 2>&1 &
  pid=$!
  until grep -q 'ember daemon sampling' "$data/log"; do sleep 0.1; done
  sleep 4
  # Wait for 20 ms past the next even second.
  now=$(date +%s.%N)
  sleep "$(echo "scale=3; w = 2 - ($now % 2) + 0.02; if (w > 2) w - 2 else w" | bc)"
  t0=$(date +%s.%N)
  kill -TERM "$pid"
  wait "$pid" || true
  took=$(echo "$(date +%s.%N) - $t0" | bc)
  line=$(grep 'ember daemon stopped' "$data/log" | sed 's/.*intervals_written/intervals_written/' || true)
  dropped=$(grep -c "context canceled\|not stored in time\|not written in time" "$data/log" || true)
  [ "$dropped" -gt 0 ] && lost=$((lost + 1))
  [ "$(echo "$took > $slowest" | bc)" = 1 ] && slowest=$took
  echo "round $round: stop $took s, $line, interval lost: $dropped"
done
echo "$ember: $lost of $rounds stops lost an interval; slowest stop $slowest s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
