#!/usr/bin/env bash
# Before and after a change to the exporters, alternately in one sitting,
# for docs/benchmarks.md: each round runs `exportcost -live` built before,
# built after, and the after binary with no target (export off), on one
# store and one receiver (bench/exportsink, its own process), each with a
# CPU profile. It prints the process's CPU per interval and, from each
# profile, the exporters' parts per interval (cumulative time / intervals).
#   bench/export-ab.sh BEFORE-BIN AFTER-BIN STORE [rounds] [pyroscope-port] [otlp-port]
set -euo pipefail
before=$1 after=$2 data=$3
rounds=${4:-3} pport=${5:-14040} oport=${6:-14317}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true; rm -rf "$out" "$data.live"' EXIT
cd "$(dirname "$0")/.."
go build -o "$out/exportsink" ./bench/exportsink
# A receiver per run, so that its counts (bytes on the wire) are the run's.
startsink() {
  "$out/exportsink" -pyroscope 127.0.0.1:$pport -otlp 127.0.0.1:$oport >"$out/sink.log" 2>&1 &
  sink=$!
  sleep 1
  kill -0 "$sink" 2>/dev/null || { cat "$out/sink.log"; exit 1; }
}
stopsink() { kill -TERM "$sink"; wait "$sink" || true; }
targets="-export pyroscope=http://127.0.0.1:$pport -export otlp=http://127.0.0.1:$oport"
# part NAME PROFILE REGEXP INTERVALS: the cumulative ms per interval of the
# functions matching REGEXP in the profile (the largest, so callers of
# callers are not added twice).
part() {
  go tool pprof -top -cum -nodecount=400 "$2" 2>/dev/null | awk -v re="$3" -v n="$4" -v name="$1" '
    function ms(s) { if (s ~ /ms$/) return s+0; if (s ~ /us$/) return s/1000; if (s ~ /s$/) return s*1000; return s }
    $6 ~ re { v = ms($4); if (v > best) best = v }
    END { printf "%s %.1f  ", name, best / n }'
}
for r in $(seq "$rounds"); do
  for which in before after off; do
    bin=$after; t=$targets
    [ $which = before ] && bin=$before
    [ $which = off ] && t=
    rm -rf "$data.live"
    startsink
    load0=$(cut -d' ' -f1 /proc/loadavg)
    line=$(GOGC=50 $bin -dir "$data" -live "$data.live" $t -cpuprofile "$out/$which.prof" | tail -1)
    load1=$(cut -d' ' -f1 /proc/loadavg)
    n=$(echo "$line" | sed -n 's/.*: \([0-9]*\) intervals stored.*/\1/p')
    per=$(echo "$line" | sed -n 's/.* CPU, \([^ ]*\) per interval.*/\1/p')
    rss=$(echo "$line" | sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p')
    printf 'round %s %-6s load %s-%s  process %s/interval, peak RSS %s MiB  ' "$r" "$which" "$load0" "$load1" "$per" "$rss"
    part pyroscope "$out/$which.prof" 'export\.\(\*pyroscope\)\.send$' "$n"
    part otlp "$out/$which.prof" 'export\.\(\*otlp\)\.send$' "$n"
    part split "$out/$which.prof" 'export\.\(\*SharedHistory\)\.split$' "$n"
    part view "$out/$which.prof" 'export\.\(\*SharedHistory\)\.Stored$' "$n"
    part gc "$out/$which.prof" 'runtime\.gcBgMarkWorker$' "$n"
    echo
    stopsink
    [ $which = off ] || grep -E '^(pyroscope|otlp):' "$out/sink.log" | sed 's/^/    /'
  done
done
rm -rf "$data.live"
