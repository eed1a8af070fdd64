#!/usr/bin/env bash
# The daemon's CPU on a host that starts many short processes, for
# docs/benchmarks.md: two shell loops each start python3 for ~0.2 s of CPU,
# over and over (about ten new processes a second, each mapping python3
# and its libraries), while `ember daemon` samples at 99 Hz; its CPU time
# is read from /proc/PID/stat after a warm-up.
# Run as root from the repository root:
#   bench/daemon-churn.sh [measure-seconds] [warmup-seconds] [ember binary]
# With CPUPROFILE=file, a -tags selfprof build is used instead and its Go CPU
# profile over the measured seconds is written to file
# (go tool pprof -top -cum bench/out/ember-selfprof file).
# It also splits the daemon's CPU by thread: the Go runtime's sysmon (the
# first thread the runtime starts), the threads raised to keep up with new
# processes (nice below 0) and the rest, which Go's profiler cannot do.
# With CHURN_REFERENCE=1, bpftrace's profile:hz:99 is measured afterwards
# for as long, under the same churn, as the reference.
# With CHURN_RATE=N, bench/busyhost/launcher starts N programs a second
# instead of the python3 loops (issue 15's "starts a second"), beside
# CHURN_LOOPS busy loops (default 2): CHURN_MIX=true starts /bin/true only
# (processes rarely sampled); CHURN_MIX=burn30 alternates /bin/true with a C
# program burning 30 ms in two functions (half of them sampled).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-90}
warm=${2:-20}
ember=${3:-}
out=bench/out
mkdir -p "$out"
if [ -n "${CPUPROFILE:-}" ]; then
  go build -tags selfprof -o "$out/ember-selfprof" ./cmd/ember
  ember=$out/ember-selfprof
elif [ -z "$ember" ]; then
  go build -o "$out/ember" ./cmd/ember
  ember=$out/ember
fi
data=$(mktemp -d)
mix=$(mktemp)
prev_stats=''
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$data" "$mix"; [ -z "$prev_stats" ] || sysctl -q kernel.bpf_stats_enabled="$prev_stats"' EXIT
lifetime=$((secs * 2 + warm + 20))
if [ -n "${CHURN_RATE:-}" ]; then
  bin=$out/busyhost
  mkdir -p "$bin"
  gcc -O2 -Wall -o "$bin/launcher" bench/busyhost/launcher.c
  gcc -O2 -g -fno-omit-frame-pointer -o "$bin/churn-c" bench/busyhost/burn.c
  case ${CHURN_MIX:-true} in
  true) echo /bin/true >"$mix" ;;
  burn30) printf '%s\n' /bin/true "$PWD/$bin/churn-c 30" >"$mix" ;;
  *) echo "CHURN_MIX: true or burn30" >&2; exit 2 ;;
  esac
  for _ in $(seq "${CHURN_LOOPS:-2}"); do timeout "$lifetime" testdata/hotspot/hotspot 1e9 >/dev/null & done
  # Raised like busyhost.sh's, so that the rate holds; children at nice 0.
  timeout "$lifetime" nice -n -10 "$bin/launcher" "$CHURN_RATE" 200 "$mix" 0 >/dev/null &
else
  for _ in $(seq "$(nproc)"); do
    timeout "$lifetime" sh -c 'while :; do /usr/bin/python3 -c "sum(range(8*10**6))"; done' &
  done
fi
"$ember" daemon --data-dir "$data" --listen 127.0.0.1:0 --frequency 99 --interval 10s --log-level warn >"$out/daemon-churn.log" 2>&1 &
daemon=$!
sleep "$warm"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# threads prints "tid nice ticks" for each of the daemon's threads.
threads() {
  for s in /proc/"$daemon"/task/*/stat; do
    awk '{ sub(/^.*\) /, ""); print FILENAME, $17, $12 + $13 }' "$s" 2>/dev/null || true # gone
  done | sed -E 's|/proc/[0-9]+/task/([0-9]+)/stat|\1|'
}
# bpf_runtime PID: nanoseconds its BPF programs ran (kernel.bpf_stats_enabled).
bpf_runtime() { grep -h '^run_time_ns:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{ r += $2 } END { printf "%.0f", r }'; }
prev_stats=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -q kernel.bpf_stats_enabled=1
threads >"$data/threads0"
t0=$(ticks "$daemon")
r0=$(bpf_runtime "$daemon")
starts0=$(awk '/^processes/ {print $2}' /proc/stat)
if [ -n "${CPUPROFILE:-}" ]; then
  curl -s -o "$CPUPROFILE" "http://127.0.0.1:6061/debug/pprof/profile?seconds=$secs"
else
  sleep "$secs"
fi
t1=$(ticks "$daemon")
r1=$(bpf_runtime "$daemon")
starts1=$(awk '/^processes/ {print $2}' /proc/stat)
threads >"$data/threads1"
kill -TERM "$daemon"; wait "$daemon" || true
awk -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v s="$secs" -v n="$((starts1 - starts0))" -v r0="$r0" -v r1="$r1" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  cpu = (t1 - t0) / hz
  printf "daemon CPU: %.2f s over %d s = %.2f%% of one core, while %d processes started (%.1f a second); its BPF programs %.2f%%; load average %s\n", cpu, s, 100 * cpu / s, n, n / s, 100 * (r1 - r0) / 1e9 / s, load
}'
awk -v pid="$daemon" 'FNR == NR { t0[$1] = $3; next }
  { d = $3 - t0[$1]; all += d
    if (sysmon == "" || $1 + 0 < sysmon + 0) if ($1 != pid) { sysmon = $1 }
    tick[$1] = d; nice[$1] = $2 }
  END {
    for (t in tick) { if (t == sysmon) sm = tick[t]; else if (nice[t] < 0) { ku += tick[t]; nku++ } }
    printf "  by thread (shares of its threads CPU time): sysmon %.1f%%, %d raised threads %.1f%%, the rest %.1f%%\n", 100 * sm / all, nku, 100 * ku / all, 100 * (all - sm - ku) / all
  }' "$data/threads0" "$data/threads1"
if [ "${CHURN_REFERENCE:-0}" = 1 ]; then
  bpftrace -e 'profile:hz:99 { @[kstack, ustack] = count(); }' >/dev/null 2>"$out/daemon-churn-bpftrace.log" &
  bt=$!
  sleep 5
  b0=$(ticks "$bt"); r0=$(bpf_runtime "$bt"); starts0=$(awk '/^processes/ {print $2}' /proc/stat)
  sleep "$secs"
  b1=$(ticks "$bt"); r1=$(bpf_runtime "$bt"); starts1=$(awk '/^processes/ {print $2}' /proc/stat)
  kill -TERM "$bt"; wait "$bt" || true # an async job ignores SIGINT
  awk -v b0="$b0" -v b1="$b1" -v r0="$r0" -v r1="$r1" -v hz="$(getconf CLK_TCK)" -v s="$secs" -v n="$((starts1 - starts0))" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
    printf "reference, bpftrace profile:hz:99: %.2f%% of one core (user + system), its BPF programs %.2f%%, while %.1f processes a second started; load average %s\n", 100 * (b1 - b0) / hz / s, 100 * (r1 - r0) / 1e9 / s, n / s, load
  }'
fi
