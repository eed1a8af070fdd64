#!/usr/bin/env bash
# The busy-host soak of docs/benchmarks.md ("Busy host soak"): `ember daemon`
# at 99 Hz (default interval, fresh store) on the host bench/busyhost.sh
# builds, with a client asking every API endpoint in turn every
# SOAK_QUERY_EVERY seconds (30; 1 h and 24 h ranges, live so never cached),
# while the daemon is sampled every 10 s into bench/out/soak.csv: RSS, BPF map
# memory, Go heap, goroutines, fds, CPU (user + system, and its BPF programs'
# run time), load average, lost and truncated stacks, /metrics latency and
# the host's process starts. At the end it prints the figures the docs quote,
# reads the last hour's merged profile for [truncated] and named-frame
# shares, stops the daemon and measures bpftrace's profile:hz:99 for a minute
# on the same busy host as the reference. The store stays in
# bench/out/soak-data; bench/out/soak.svg plots RSS and CPU.
# Busy-host settings pass through (BUSY_STARTS_PER_SEC, BUSY_COMPILE, QUIET...);
# SOAK_WARMUP (60 s, left out of the CPU figure), SOAK_REFERENCE=0 skips bpftrace,
# SOAK_QUERIES=0 leaves out the query client (for the daemon's own cost).
# SOAK_BASELINE=BINARY runs a second daemon (another build, e.g. the commit
# before a change) beside the first on the same host, with its own store and
# its own query client, and prints its figures too: a side-by-side in one run,
# where both pay for the other's presence alike.
# Run as root from the repository root:
#   bench/soak.sh [minutes] [ember binary]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
minutes=${1:-60}
ember=${2:-}
addr=${SOAK_ADDR:-127.0.0.1:7079}
warm=${SOAK_WARMUP:-60}
every=${SOAK_QUERY_EVERY:-30}
out=bench/out
mkdir -p "$out"
if [ -z "$ember" ]; then
  go build -o "$out/ember" ./cmd/ember
  ember=$out/ember
fi
go build -o "$out/soakstat" ./bench/soakstat
go build -o "$out/plot-soak" ./bench/plot-soak
data=$out/soak-data
csv=$out/soak.csv
qcsv=$out/soak-queries.csv
rm -rf "$data"
tmp=$(mktemp -d)
busy='' daemon='' client='' bt='' base='' base_client=''
baseline=${SOAK_BASELINE:-}
base_addr=${SOAK_BASE_ADDR:-127.0.0.1:7080}
base_data=$out/soak-base-data
base_csv=$out/soak-base.csv
rm -rf "$base_data"
prev_stats=$(sysctl -n kernel.bpf_stats_enabled)

stop() { # pid: TERM, then KILL after 15 s
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  if [ -n "$client" ]; then pkill -P "$client" 2>/dev/null || true; stop "$client"; fi
  if [ -n "$base_client" ]; then pkill -P "$base_client" 2>/dev/null || true; stop "$base_client"; fi
  stop "$base"
  stop "$bt"
  stop "$daemon"
  stop "$busy" # its own trap kills its process group
  sysctl -q kernel.bpf_stats_enabled="$prev_stats"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# The BPF programs' own run time, as bench/record-overhead.sh reads it.
sysctl -q kernel.bpf_stats_enabled=1

: >"$out/soak-busyhost.log" # before the start, so no earlier run's "ready" is read
bench/busyhost.sh >"$out/soak-busyhost.log" 2>&1 &
busy=$!
for _ in $(seq 600); do
  grep -q '^busy host ready' "$out/soak-busyhost.log" && break
  kill -0 "$busy" 2>/dev/null || { cat "$out/soak-busyhost.log" >&2; exit 1; }
  sleep 1
done
grep '^busy host ready' "$out/soak-busyhost.log"

"$ember" daemon --data-dir "$data" --listen "$addr" --frequency 99 --log-level warn >"$out/soak-daemon.log" 2>&1 &
daemon=$!
start=$(date +%s)
for _ in $(seq 120); do
  curl -sf -o /dev/null "http://$addr/readyz" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$out/soak-daemon.log" >&2; exit 1; }
  sleep 1
done
if [ -n "$baseline" ]; then
  "$baseline" daemon --data-dir "$base_data" --listen "$base_addr" --frequency 99 --log-level warn >"$out/soak-base-daemon.log" 2>&1 &
  base=$!
  for _ in $(seq 120); do
    curl -sf -o /dev/null "http://$base_addr/readyz" && break
    kill -0 "$base" 2>/dev/null || { cat "$out/soak-base-daemon.log" >&2; exit 1; }
    sleep 1
  done
  echo "soak: baseline $baseline, pid $base on $base_addr"
fi
echo "soak: $minutes min, daemon pid $daemon on $addr, started $(date -u +%FT%TZ)"

# query NAME PATH appends one request's seconds, status and size to $qcsv;
# qaddr and qprefix say which daemon is asked.
query() {
  local r
  r=$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}' --max-time 120 "http://$qaddr$2") || true
  read -r code secs size <<<"${r:-000 0 0}"
  echo "$(($(date +%s) - start)),$qprefix$1,$code,$secs,$size" >>"$qcsv"
}
echo "t_s,query,status,seconds,bytes" >"$qcsv"
# client QADDR QPREFIX asks one daemon every endpoint in turn, forever.
client() (
  qaddr=$1 qprefix=$2
  sleep 20 # the first stored interval, so early requests do not fail for want of data
  while :; do
    t0=$(date +%s)
    query profile_1h '/api/v1/profile?from=-1h'
    query flamegraph_1h '/api/v1/flamegraph?from=-1h&max_nodes=16384'
    query series_1h_comm '/api/v1/series?from=-1h&step=10s&group_by=comm'
    query series_1h_pid '/api/v1/series?from=-1h&step=10s&group_by=pid'
    query labels_1h '/api/v1/labels?from=-1h'
    query comm_values_24h '/api/v1/labels/comm/values?from=-24h'
    query diff_5m '/api/v1/diff?from=-5m&base_from=-10m&base_to=-5m'
    query metrics '/metrics'
    query profile_24h '/api/v1/profile?from=-24h'
    query flamegraph_24h '/api/v1/flamegraph?from=-24h&max_nodes=16384'
    query series_24h_comm '/api/v1/series?from=-24h&step=5m&group_by=comm'
    left=$((t0 + every - $(date +%s)))
    if [ "$left" -gt 0 ]; then sleep "$left"; fi
  done
)
if [ "${SOAK_QUERIES:-1}" = 1 ]; then
  client "$addr" '' &
  client=$!
  if [ -n "$base" ]; then
    client "$base_addr" base: &
    base_client=$!
  fi
fi

# bpf_fds PID prints the memlock bytes of the BPF maps and the run time (ns)
# of the BPF programs PID holds, each map or program counted once by id.
bpf_fds() {
  grep -H -E '^(map_id|prog_id|memlock|run_time_ns):' /proc/"$1"/fdinfo/* 2>/dev/null |
    awk -F'[:\t ]+' '{ v[$1, $2] = $3; f[$1] = 1 }
      END {
        for (x in f) {
          if ((x, "map_id") in v) maps[v[x, "map_id"]] = v[x, "memlock"]
          if ((x, "prog_id") in v) progs[v[x, "prog_id"]] = v[x, "run_time_ns"]
        }
        for (k in maps) m += maps[k]
        for (k in progs) r += progs[k]
        printf "%.0f %.0f\n", m, r
      }'
}
# quantile Q prints the nearest-rank quantile of the numbers on stdin.
quantile() {
  sort -g | awk -v q="$1" 'NF { a[++n] = $1 } END {
    if (n == 0) { print "nan"; exit }
    i = int(n * q + 0.999999); if (i < 1) i = 1; if (i > n) i = n
    print a[i]
  }'
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

header="t_s,rss_kib,bpf_maps_kib,heap_inuse_mib,goroutines,fds,cpu_ticks,cpu_pct,bpf_run_ns,bpf_cpu_pct,load1,samples_recorded,stacks_lost,samples_truncated,metrics_ms,host_forks,forks_per_s,rss_file_kib"
echo "$header" >"$csv"
if [ -n "$base" ]; then echo "$header" >"$base_csv"; fi
# sample_daemon PID ADDR CSV appends one row about a daemon to CSV; its
# previous reading is kept in prev_PID.
sample_daemon() {
  local daemon=$1 addr=$2 csv=$3 now rss rssfile maps runns fds cpu load forks msecs heap gor rec lost trunc row t cpct rn bpct hf fps ms
  local -n prev=prev_$1
  now=$(date +%s.%N)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon/status")
  rssfile=$(awk '/^RssFile/ {print $2}' "/proc/$daemon/status")
  read -r maps runns < <(bpf_fds "$daemon")
  fds=$(ls "/proc/$daemon/fd" | wc -l)
  cpu=$(ticks "$daemon")
  load=$(cut -d' ' -f1 /proc/loadavg)
  forks=$(awk '/^processes/ {print $2}' /proc/stat)
  msecs=$(curl -s -o "$tmp/metrics" -w '%{time_total}' --max-time 60 "http://$addr/metrics") || msecs=''
  read -r heap gor rec lost trunc < <(awk '
    /^go_memstats_heap_inuse_bytes / { h = $2 }
    /^go_goroutines / { g = $2 }
    /^ember_samples_total\{outcome="recorded"\}/ { rec = $2 }
    /^ember_samples_total\{outcome="count_map_full"\}/ { lost += $2 }
    /^ember_stacks_lost_total\{/ && !/kernel thread|process exiting/ { lost += $2 }
    /^ember_stacks_truncated_total / { tr = $2 }
    END { printf "%.1f %d %.0f %.0f %.0f\n", h / 1048576, g, rec, lost, tr }' "$tmp/metrics")
  row=$(awk -v now="$now" -v start="$start" -v prev="$prev" -v cpu="$cpu" -v hz="$hz" -v runns="$runns" -v forks="$forks" 'BEGIN {
    split(prev, p, " ")
    if (prev == "") { printf "%.0f,,%s,,%s,", now - start, runns, forks; exit }
    dt = now - p[1]
    printf "%.0f,%.2f,%s,%.3f,%s,%.1f", now - start, 100 * (cpu - p[2]) / hz / dt, runns, 100 * (runns - p[3]) / 1e9 / dt, forks, (forks - p[4]) / dt
  }')
  prev="$now $cpu $runns $forks"
  IFS=, read -r t cpct rn bpct hf fps <<<"$row"
  ms=$(awk -v s="$msecs" 'BEGIN { if (s == "") print ""; else printf "%.1f", s * 1000 }')
  echo "$t,$rss,$((maps / 1024)),$heap,$gor,$fds,$cpu,$cpct,$rn,$bpct,$load,$rec,$lost,$trunc,$ms,$hf,$fps,$rssfile" >>"$csv"
}
end=$((start + minutes * 60))
declare "prev_$daemon="
if [ -n "$base" ]; then declare "prev_$base="; fi
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 10
  kill -0 "$daemon" 2>/dev/null || { echo "soak: the daemon died" >&2; tail "$out/soak-daemon.log" >&2; exit 1; }
  sample_daemon "$daemon" "$addr" "$csv"
  if [ -n "$base" ]; then
    kill -0 "$base" 2>/dev/null || { echo "soak: the baseline daemon died" >&2; tail "$out/soak-base-daemon.log" >&2; exit 1; }
    sample_daemon "$base" "$base_addr" "$base_csv"
  fi
done

# The last hour of the soak, as the UI's default view asks for it.
curl -s -o "$out/soak-last-hour.pb.gz" --max-time 300 "http://$addr/api/v1/profile?from=-1h"
curl -s -o "$out/soak-metrics.txt" "http://$addr/metrics"
if [ -n "$base" ]; then
  curl -s -o "$out/soak-base-last-hour.pb.gz" --max-time 300 "http://$base_addr/api/v1/profile?from=-1h"
  curl -s -o "$out/soak-base-metrics.txt" "http://$base_addr/metrics"
fi
for c in "$client" "$base_client"; do
  if [ -n "$c" ]; then pkill -P "$c" 2>/dev/null || true; stop "$c"; fi
done
client='' base_client=''
stop "$daemon"
daemon=''
stop "$base"

# summarize CSV prints the figures of one daemon's samples.
summarize() {
awk -F, -v warm="$warm" -v hz="$hz" -v minutes="$minutes" 'NR == 1 { next } {
    n++; t[n] = $1; rss[n] = $2 / 1024; tot = $2 / 1024 + $3 / 1024
    if (tot > peak) { peak = tot; peakrss = $2 / 1024; peakmaps = $3 / 1024; peakfile = $18 / 1024 }
    if (rss[n] > maxrss) maxrss = rss[n]
    if (heap < $4) heap = $4
    if (n == 1) { g0 = $5; f0 = $6 }
    g1 = $5; f1 = $6
    if (c0 == "" && $1 >= warm) { c0 = $7; ct0 = $1; b0 = $9; h0 = $16; l0 = $12 - 0; lo0 = $13; tr0 = $14 }
    c1 = $7; ct1 = $1; b1 = $9; h1 = $16; l1 = $12; lo1 = $13; tr1 = $14
  }
  END {
    # Least squares over the second half of the soak.
    for (i = 1; i <= n; i++) if (t[i] >= minutes * 30) { k++; sx += t[i] / 3600; sy += rss[i]; sxx += (t[i] / 3600)^2; sxy += t[i] / 3600 * rss[i] }
    slope = (k > 1 && k * sxx - sx * sx > 0) ? (k * sxy - sx * sy) / (k * sxx - sx * sx) : 0
    el = ct1 - ct0
    printf "peak RSS + BPF maps: %.1f MiB (RSS %.1f, of it %.1f file-backed, + maps %.1f); peak RSS %.1f MiB; peak Go heap in use %.1f MiB\n", peak, peakrss, peakfile, peakmaps, maxrss, heap
    printf "RSS slope over the second half: %+.1f MiB/hour (%d samples, least squares)\n", slope, k
    printf "goroutines %d -> %d, fds %d -> %d (first sample -> last)\n", g0, g1, f0, f1
    printf "daemon CPU: %.2f%% of one core (user + system, %d s after a %d s warm-up); its BPF programs %.2f%%\n", 100 * (c1 - c0) / hz / el, el, warm, 100 * (b1 - b0) / 1e9 / el
    d = (l1 - l0 > 0) ? l1 - l0 : 1
    printf "stacks and samples lost: %.2f%% of %d samples recorded after the warm-up; truncated (metric): %.2f%%\n", 100 * (lo1 - lo0) / d, l1 - l0, 100 * (tr1 - tr0) / d
    printf "host process starts: %.1f a second (all of the host, /proc/stat)\n", (h1 - h0) / el
  }' "$1"
metrics_ms=$(tail -n +2 "$1" | cut -d, -f15 | grep -v '^$' || true)
echo "/metrics latency: p50 $(quantile 0.5 <<<"$metrics_ms") ms, p99 $(quantile 0.99 <<<"$metrics_ms") ms, max $(quantile 1 <<<"$metrics_ms") ms ($(grep -c . <<<"$metrics_ms") requests, one every 10 s)"
}
echo "== ember daemon, $minutes min on the busy host ($(grep '^busy host ready' "$out/soak-busyhost.log" | cut -d: -f2-))"
summarize "$csv"
if [ -n "$baseline" ]; then
  echo "== baseline daemon ($baseline), beside it in the same run"
  summarize "$base_csv"
fi
loads=$(tail -n +2 "$csv" | cut -d, -f11)
echo "load average (1 min): min $(quantile 0 <<<"$loads"), median $(quantile 0.5 <<<"$loads"), max $(quantile 1 <<<"$loads")"
grep '^launcher:' "$out/soak-busyhost.log" | tail -1 | sed 's/^/churn /' || true
echo "== stacks lost by reason, whole soak (ember_stacks_lost_total, ember_samples_total)"
grep -E '^ember_(stacks_lost_total|samples_total|process_events_lost_total|process_reads_total)' "$out/soak-metrics.txt" | sed 's/^/  /'
echo "== API latency over the soak (live ranges, so never cached; status 200 only)"
for q in $(tail -n +2 "$qcsv" | cut -d, -f2 | sort -u); do
  ok=$(awk -F, -v q="$q" '$2 == q && $3 == 200 { print $4 * 1000 }' "$qcsv")
  bad=$(awk -F, -v q="$q" '$2 == q && $3 != 200' "$qcsv" | wc -l)
  printf "  %-16s n=%3d p50 %6.0f ms  p95 %6.0f ms  max %6.0f ms  errors %d\n" "$q" "$(grep -c . <<<"$ok")" \
    "$(quantile 0.5 <<<"$ok")" "$(quantile 0.95 <<<"$ok")" "$(quantile 1 <<<"$ok")" "$bad"
done
echo "== the soak's last hour (/api/v1/profile?from=-1h), stack by stack"
"$out/soakstat" "$out/soak-last-hour.pb.gz"
if [ -n "$baseline" ]; then
  echo "== the baseline's last hour, stack by stack"
  "$out/soakstat" "$out/soak-base-last-hour.pb.gz"
  echo "== baseline: stacks lost and process events lost, whole soak"
  grep -E '^ember_(stacks_lost_total|samples_total|process_events_lost_total)' "$out/soak-base-metrics.txt" | sed 's/^/  /'
  "$out/plot-soak" "$base_csv" >"$out/soak-base.svg"
fi
echo "store: $(du -sh "$data" | cut -f1) in $data"
echo "daemon errors logged: $(grep -c 'level=ERROR' "$out/soak-daemon.log" || true)"
"$out/plot-soak" "$csv" >"$out/soak.svg"

if [ "${SOAK_REFERENCE:-1}" = 1 ]; then
echo "== reference: bpftrace profile:hz:99 { @[kstack, ustack] = count(); } for 60 s, same busy host, no ember"
bpftrace -e 'profile:hz:99 { @[kstack, ustack] = count(); }' >/dev/null 2>"$out/soak-bpftrace.log" &
bt=$!
sleep 10
read -r _ run0 < <(bpf_fds "$bt")
c0=$(ticks "$bt")
t0=$(date +%s.%N)
sleep 60
read -r _ run1 < <(bpf_fds "$bt")
c1=$(ticks "$bt")
t1=$(date +%s.%N)
stop "$bt" # its map is printed (and symbolized) at exit, after the measurement
bt=''
awk -v c0="$c0" -v c1="$c1" -v r0="$run0" -v r1="$run1" -v t0="$t0" -v t1="$t1" -v hz="$hz" 'BEGIN {
  el = t1 - t0
  printf "bpftrace: %.2f%% of one core (user + system), its BPF programs %.2f%%, over %.0f s\n", 100 * (c1 - c0) / hz / el, 100 * (r1 - r0) / 1e9 / el, el
}'
fi
echo "csv: $csv, queries: $qcsv, plot: $out/soak.svg"
