#!/usr/bin/env bash
# Where the daemon's memory goes, for docs/benchmarks.md: runs `ember daemon`
# built with -tags selfprof (Go's pprof of Ember itself on 127.0.0.1:6061)
# while a busy loop keeps each CPU at 100%, then prints its RSS split, the Go
# runtime's heap figures and the largest live heap allocation sites.
# Run as root from the repository root:
#   bench/daemon-heap.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-90}
out=bench/out
mkdir -p "$out"
go build -tags selfprof -o "$out/ember-selfprof" ./cmd/ember
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq "$(nproc)"); do timeout "$((secs + 10))" sh -c 'while :; do :; done' & done
"$out/ember-selfprof" daemon --data-dir "$data" --listen 127.0.0.1:0 --log-level warn >"$out/daemon-heap.log" 2>&1 &
daemon=$!
sleep "$secs"
grep -E '^(VmHWM|VmRSS|RssAnon|RssFile)' "/proc/$daemon/status"
curl -s -o "$out/daemon-heap.pb.gz" 'http://127.0.0.1:6061/debug/pprof/heap?gc=1'
curl -s 'http://127.0.0.1:6061/debug/pprof/heap?debug=1' |
  grep -E '^# (HeapAlloc|HeapInuse|HeapIdle|HeapReleased|NextGC) ' |
  awk '{printf "%s %.1f MiB\n", $2, $4 / 1048576}'
kill -TERM "$daemon"; wait "$daemon" || true
go tool pprof -sample_index=inuse_space -top -nodecount=15 "$out/daemon-heap.pb.gz" 2>/dev/null | sed -n '5,22p'
