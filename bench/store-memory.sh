#!/usr/bin/env bash
# Measures the store's memory on a day of history from a host with process
# churn (issue 15's soak: about 180,000 stacks and 50,000 label sets): 35
# short-lived processes a minute, each a new pid, and 5,000 user stacks per
# program, 99 Hz on 2 CPUs, 10 s intervals. It backfills the directory
# unless it holds the day already, then, in a fresh process and on a copy,
# prints the Go heap after Open, after a 24 h query and after the query
# latencies (merged profile and per-stack profile, 1 h and 24 h), and the
# cost of appending an hour of new intervals.
# Run from the repository root: bench/store-memory.sh [directory]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/out/store-memory}
mkdir -p "$dir"
dir=$(realpath "$dir")
EMBER_STORAGE_CHURN_DIR="$dir" go test ./storage -run '^TestStoreMemoryBackfill$' -count=1 -v -timeout 120m |
  grep -v '^=== RUN\|^--- \|^PASS\|^ok '
EMBER_STORAGE_CHURN_DIR="$dir" go test ./storage -run '^TestStoreMemory$' -count=1 -v -timeout 60m |
  grep -v '^=== RUN\|^--- \|^PASS\|^ok '
