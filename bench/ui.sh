#!/usr/bin/env bash
# Web UI load time for docs/benchmarks.md: from navigation to a drawn flame
# graph of a 1-hour range of a busy host, in headless Chromium against the
# API and UI over a backfilled store (2 hours of package backfill's
# generated history: about 200 processes on 2 busy CPUs at 99 Hz, 10 s
# intervals). Prints p50, p95 and max over 20 cold loads (ranges the server has
# not seen: the store answers) and 9 cached ones (the flame-graph cache).
# Run from the repository root: bench/ui.sh [store directory]
# An existing store directory is reused (the backfill takes a minute or two).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/out/ui-store}
if [ ! -d "$dir" ]; then
  go run ./storage/internal/backfill/cmd/ember-backfill -dir "$dir" -hours 2
fi
dir=$(realpath "$dir")
EMBER_UI_BENCH_DIR="$dir" go test ./ui -run '^TestUILoadBenchmark$' -count=1 -v | grep '^ui load'
