#!/usr/bin/env bash
# Measures what one API request adds to the resident memory of a process
# serving a store as the daemon does, for docs/benchmarks.md ("Memory per
# request"). Backfills 24 hours of a churning host (package backfill's busy
# host with 120 short-lived processes a minute, each a new pid) unless the
# directory already holds a store, then runs each request in a fresh process
# (bench/querymem) and prints its line: status, body size (gzipped), time,
# RSS before and peak, and what the Go heap allocated.
# Run from the repository root: bench/querymem.sh [directory]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/out/querymem}
if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir")" ]; then
  go run ./storage/internal/backfill/cmd/ember-backfill -dir "$dir" -hours 24 -transient-per-min 120
fi
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go build -o "$bin" ./bench/querymem
for url in \
  '/api/v1/series?from=-24h&step=10s&group_by=pid' \
  '/api/v1/series?from=-4h&step=10s&group_by=pid' \
  '/api/v1/flamegraph?from=-24h' \
  '/api/v1/profile?from=-24h'; do
  "$bin" -dir "$dir" -url "$url"
done
"$bin" -dir "$dir" -url '/api/v1/flamegraph?from=-24h' -parallel 8
