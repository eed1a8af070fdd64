#!/usr/bin/env bash
# Query latency on a store the daemon recorded itself (docs/benchmarks.md,
# "Busy host soak"): copies STORE (by default the last soak's,
# bench/out/soak-data), runs `ember daemon` on the copy (so its sampler runs
# and keeps writing, as in production), and asks the UI's views N times each
# (merged profile and flame graph over the last hour and 24 hours, and the
# series the timeline asks for), with ranges ending now so no answer comes
# from the cache. Prints p50, p95 and max per request, and the daemon's
# peak RSS. The soak must have ended less than an hour ago for the last hour
# to hold its data.
# Run as root from the repository root:
#   bench/query-latency.sh [store] [requests] [ember binary]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
store=${1:-bench/out/soak-data}
n=${2:-20}
ember=${3:-}
addr=${QUERY_ADDR:-127.0.0.1:7081}
if [ -z "$ember" ]; then
  go build -o bench/out/ember ./cmd/ember
  ember=bench/out/ember
fi
tmp=$(mktemp -d)
daemon=''
cleanup() {
  if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cp -a "$store" "$tmp/data"
"$ember" daemon --data-dir "$tmp/data" --listen "$addr" --log-level warn >"$tmp/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 120); do
  curl -sf -o /dev/null "http://$addr/readyz" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$tmp/daemon.log" >&2; exit 1; }
  sleep 1
done
quantile() {
  sort -g | awk -v q="$1" 'NF { a[++n] = $1 } END {
    i = int(n * q + 0.999999); if (i < 1) i = 1; if (i > n) i = n
    print a[i]
  }'
}
echo "store: $store ($(du -sh "$store" | cut -f1)), $n requests each, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for q in 'profile 1h|/api/v1/profile?from=-1h' 'flamegraph 1h|/api/v1/flamegraph?from=-1h&max_nodes=16384' \
  'series 1h|/api/v1/series?from=-1h&step=10s' \
  'profile 24h|/api/v1/profile?from=-24h' 'flamegraph 24h|/api/v1/flamegraph?from=-24h&max_nodes=16384' \
  'series 24h|/api/v1/series?from=-24h&step=5m'; do
  name=${q%%|*} path=${q#*|}
  : >"$tmp/times"
  for _ in $(seq "$n"); do
    r=$(curl -s -o "$tmp/body" -w '%{http_code} %{time_total}' --max-time 120 "http://$addr$path")
    [ "${r%% *}" = 200 ] || { echo "$name: status ${r%% *}: $(head -c 300 "$tmp/body")" >&2; exit 1; }
    awk -v s="${r#* }" 'BEGIN { printf "%.1f\n", s * 1000 }' >>"$tmp/times"
  done
  printf "%-15s p50 %7.1f ms  p95 %7.1f ms  max %7.1f ms  (%s bytes)\n" "$name" \
    "$(quantile 0.5 <"$tmp/times")" "$(quantile 0.95 <"$tmp/times")" "$(quantile 1 <"$tmp/times")" "$(stat -c %s "$tmp/body")"
done
echo "daemon peak RSS: $(awk '/^VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$daemon/status")"
