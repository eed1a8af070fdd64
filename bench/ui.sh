#!/usr/bin/env bash
# Web UI load time for docs/benchmarks.md: from navigation to a drawn flame
# graph of the default view (1 hour, grouped by process) of a busy host, in
# headless Chromium against the API and UI over a store. Prints p50, p95
# and max over 20 cold loads (ranges the server has not seen: the store
# answers) and 9 cached ones (the flame-graph cache); see TestUILoadBenchmark
# for the ranges, which end at the store's last data.
#
# Run from the repository root: bench/ui.sh [-s] [store directory]
#   store: a store the daemon recorded (used as is: copy it first, the
#          test opens it read-write), or a directory to backfill with 2 hours
#          of package backfill's generated history (about 200 processes on
#          2 busy CPUs at 99 Hz, 10 s intervals) if it does not exist.
#   -s:    an `ember daemon` samples the host (99 Hz, into a throwaway data
#          directory) while the loads run, as on a host that runs Ember;
#          needs root.
# EMBER_UI_BENCH_WINDOW, EMBER_UI_BENCH_SHIFT and EMBER_UI_BENCH_QUERY pass
# through to the test.
set -euo pipefail
cd "$(dirname "$0")/.."
sampler=
if [ "${1:-}" = -s ]; then
  sampler=1
  shift
fi
dir=${1:-bench/out/ui-store}
if [ ! -d "$dir" ]; then
  go run ./storage/internal/backfill/cmd/ember-backfill -dir "$dir" -hours 2
fi
dir=$(realpath "$dir")
if [ -n "$sampler" ]; then
  work=$(mktemp -d /tmp/ember-ui-sampler.XXXXXX)
  go build -o "$work/ember" ./cmd/ember
  "$work/ember" daemon --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/daemon.log" 2>&1 &
  daemon=$!
  trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rm -rf "$work"' EXIT
  sleep 5
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "ui.sh: the sampling daemon did not start:" >&2
    cat "$work/daemon.log" >&2
    exit 1
  fi
  echo "ui load: an ember daemon (pid $daemon) samples the host beside the loads"
fi
mkdir -p bench/out
log=bench/out/ui-test.log
if ! EMBER_UI_BENCH_DIR="$dir" go test ./ui -run '^TestUILoadBenchmark$' -count=1 -v -timeout 60m >"$log" 2>&1; then
  grep '^ui load' "$log" || true
  tail -20 "$log" >&2
  exit 1
fi
grep '^ui load' "$log"
