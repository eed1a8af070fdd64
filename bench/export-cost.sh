#!/usr/bin/env bash
# The CPU and memory that exporting adds, for docs/benchmarks.md: an hour of
# generated history (ember-backfill: ~200 processes on 2 busy CPUs, 10 s
# intervals) sent to a Pyroscope and an OTLP receiver (bench/exportsink, its
# own process) by the exporters the daemon runs, timed by getrusage. The
# daemon does the same work per interval, one interval at a time. Needs no
# root and no sampler, so it can run beside other measurements.
#   bench/export-cost.sh [hours]
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${1:-1}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember-backfill" ./storage/internal/backfill/cmd/ember-backfill
go build -o "$out/exportsink" ./bench/exportsink
go build -o "$out/exportcost" ./bench/exportcost
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data"' EXIT
"$out/ember-backfill" -dir "$data" -hours "$hours"
"$out/exportsink" -pyroscope 127.0.0.1:14040 -otlp 127.0.0.1:14317 >"$out/exportsink.log" 2>&1 &
sink=$!
sleep 1
"$out/exportcost" -dir "$data" -export pyroscope=http://127.0.0.1:14040 -export otlp=http://127.0.0.1:14317
for kind in pyroscope otlp; do
  "$out/exportcost" -dir "$data" -export "$kind=http://127.0.0.1:$([ $kind = pyroscope ] && echo 14040 || echo 14317),name=$kind-alone" | sed "s/^/$kind alone: /"
done
kill -TERM "$sink"; wait "$sink" || true
cat "$out/exportsink.log"
