#!/usr/bin/env bash
# Load test for docs/benchmarks.md: merged pprof profiles and concurrent
# flame-graph queries over 1 h and 24 h against `ember daemon` serving a backfilled store, with its
# sampler running, and whether the sampler lost samples meanwhile (its own
# metrics before and after). Loopback only.
# Run as root from the repository root:
#   bench/http-load.sh <backfilled store directory, as bench/storage.sh makes>
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?give a backfilled store directory (bench/storage.sh makes one)}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember" ./cmd/ember
go build -o "$out/loadtest" ./web/loadtest
data=$(mktemp -d)
cp -a "$src"/. "$data"/
addr=127.0.0.1:7071
"$out/ember" daemon --data-dir "$data" --listen "$addr" --log-level warn >"$out/http-daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true; rm -rf "$data"' EXIT
sleep 15

losses() { # samples recorded, and every loss the sampler counts
  curl -s "http://$addr/metrics" | awk '
    /^ember_samples_total\{outcome="recorded"\}/ { rec = $2 }
    /^ember_samples_total\{outcome="count_map_full"\}/ { lost += $2 }
    /^ember_stacks_lost_total\{/ && !/kernel thread|process exiting/ { lost += $2 }
    /^ember_process_events_lost_total / { events = $2 }
    END { printf "%d %d %d\n", rec, lost, events }'
}
read -r rec0 lost0 ev0 < <(losses)
# bench/storage.sh backfills the day before the last whole hour: aim inside it.
hour=${HOUR_RANGE:-from=-3h&to=-2h}
day=${DAY_RANGE:-from=-25h&to=-1h}
echo "== merged pprof profile, 1 h ($hour), 1 client"
"$out/loadtest" -c 1 -n 20 -url "http://$addr/api/v1/profile?$hour"
echo "== merged pprof profile, 24 h ($day), 1 client"
"$out/loadtest" -c 1 -n 20 -url "http://$addr/api/v1/profile?$day"
echo "== flame graph, 1 h ($hour), 4 clients"
"$out/loadtest" -c 4 -n 100 -url "http://$addr/api/v1/flamegraph?$hour"
echo "== flame graph, 24 h ($day), 1 client"
"$out/loadtest" -c 1 -n 10 -url "http://$addr/api/v1/flamegraph?$day"
echo "== flame graph, 24 h ($day), 4 clients (2 run at once by default, the rest queue or get 429)"
"$out/loadtest" -c 4 -n 40 -url "http://$addr/api/v1/flamegraph?$day"
read -r rec1 lost1 ev1 < <(losses)
echo "== sampler during the load: $((rec1 - rec0)) samples recorded, $((lost1 - lost0)) lost (stacks or samples), $((ev1 - ev0)) process events lost"
grep -c "level=ERROR" "$out/http-daemon.log" | xargs echo "daemon errors logged:"
