#!/usr/bin/env bash
# The CPU and memory that exporting adds, for docs/benchmarks.md: an hour of
# generated history (ember-backfill: ~200 processes on 2 busy CPUs, 10 s
# intervals) sent to a Pyroscope and an OTLP receiver (bench/exportsink, its
# own process) by the exporters the daemon runs, timed by getrusage.
# First live, export off then on: each interval stored into a new store and
# handed to the exporters as the daemon does, the difference being what
# export adds to a daemon that keeps up. Then back-fill: the whole history
# read back from the store and sent, as after an outage or a restart; then
# each kind alone (pyroscope-ingest: the /ingest endpoint, one request a
# series).
# Needs no root and no sampler, so it can run beside other measurements.
#   bench/export-cost.sh [hours] [live rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${1:-1}
rounds=${2:-3}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember-backfill" ./storage/internal/backfill/cmd/ember-backfill
go build -o "$out/exportsink" ./bench/exportsink
go build -o "$out/exportcost" ./bench/exportcost
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true; rm -rf "$data" "$data.live"' EXIT
"$out/ember-backfill" -dir "$data" -hours "$hours"
"$out/exportsink" -pyroscope 127.0.0.1:14040 -otlp 127.0.0.1:14317 >"$out/exportsink.log" 2>&1 &
sink=$!
sleep 1
kill -0 "$sink" 2>/dev/null || { cat "$out/exportsink.log"; echo "exportsink did not start" >&2; exit 1; }
# Off and on alternate, so that a change of the host's load falls on both.
for r in $(seq "$rounds"); do
  echo "round $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$data.live"; "$out/exportcost" -dir "$data" -live "$data.live" | sed 's/^/  off: /'
  rm -rf "$data.live"; "$out/exportcost" -dir "$data" -live "$data.live" \
    -export pyroscope=http://127.0.0.1:14040 -export otlp=http://127.0.0.1:14317 | sed 's/^/  on:  /'
done
rm -rf "$data.live"
echo "back-fill, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$out/exportcost" -dir "$data" -export pyroscope=http://127.0.0.1:14040 -export otlp=http://127.0.0.1:14317
for kind in pyroscope pyroscope-ingest otlp; do
  "$out/exportcost" -dir "$data" -export "$kind=http://127.0.0.1:$([ $kind = otlp ] && echo 14317 || echo 14040),name=$kind-alone" | sed "s/^/$kind alone: /"
done
kill -TERM "$sink"; wait "$sink" || true
cat "$out/exportsink.log"
