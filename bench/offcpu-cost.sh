#!/usr/bin/env bash
# The cost of off-CPU tracking, for docs/benchmarks.md: a context-switch
# storm (bench/switchstorm: two threads ping-ponging a byte through pipes,
# blocking in the same place each time; then spinners preempted 27,000
# times a second at a new place each time) runs alone, under `ember daemon`
# without and with --offcpu, and under a bpftrace offcputime-style script,
# one after the other in the same run.
# For each: the storm's rate, context switches per second (/proc/stat),
# the profiler's own CPU (utime+stime of its process) and the BPF time per
# run of its sched_switch program (kernel.bpf_stats_enabled, bpftool).
# Run as root from the repository root:
#   bench/offcpu-cost.sh [seconds-per-phase] [warmup-seconds]
# EMBER=path runs that binary instead of building this checkout's (to
# compare two versions in one sitting); BPFTRACE=0 leaves bpftrace out.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
warm=${2:-10}
out=bench/out
mkdir -p "$out"
ember=${EMBER:-$out/ember}
[ -n "${EMBER:-}" ] || go build -o "$ember" ./cmd/ember
gcc -O2 -pthread -o "$out/storm" bench/switchstorm/storm.c
# bpftrace's tracepoints need tracefs, which this machine does not mount.
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
sysctl -qw kernel.bpf_stats_enabled=1
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$data"' EXIT
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ctxt() { awk '/^ctxt/ {print $2}' /proc/stat; }
# bpf_runtime NAME: "run_time_ns run_cnt" of the programs so named (ember's
# on_switch, bpftrace's sched_switch). By name: bpftrace closes its program
# fds once attached, and this bpftool cannot name a program's process.
bpf_runtime() {
  bpftool prog show --json | jq -r --arg n "$1" '
    [.[] | select(.name == $n)]
    | "\(map(.run_time_ns // 0) | add // 0) \(map(.run_cnt // 0) | add // 0)"'
}

# phase NAME PID PROG: run the storm for secs and print one line of
# figures; PID is the profiler's process (0: none), PROG its sched_switch
# program's name.
phase() {
  local name=$1 pid=$2 prog=${3:-} t0=0 t1=0 b0="0 0" b1="0 0" c0 c1 rate
  if [ "$pid" != 0 ]; then t0=$(ticks "$pid"); fi
  if [ -n "$prog" ]; then b0=$(bpf_runtime "$prog"); fi
  c0=$(ctxt)
  case ${storm:-pingpong} in
  pingpong) rate=$("$out/storm" "$secs" | awk '{print $NF}') ;;
  preempt) rate=$("$out/storm" "$secs" preempt | awk '{print $NF}') ;;
  *) sleep "$secs"; rate=0 ;;
  esac
  c1=$(ctxt)
  if [ "$pid" != 0 ]; then t1=$(ticks "$pid"); fi
  if [ -n "$prog" ]; then b1=$(bpf_runtime "$prog"); fi
  awk -v n="$name" -v rate="$rate" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v s="$secs" \
    -v b0="$b0" -v b1="$b1" 'BEGIN {
    split(b0, x, " "); split(b1, y, " ")
    runs = y[2] - x[2]; ns = y[1] - x[1]
    printf "%-22s storm %7.0f a second, %8.0f switches/s; profiler CPU %5.2f%% of a core", n, rate, (c1 - c0) / s, 100 * (t1 - t0) / hz / s
    if (runs > 0) printf "; sched_switch BPF %.0f ns a run over %d runs (%.1f%% of a core)", ns / runs, runs, 100 * ns / 1e9 / s
    printf "\n"
  }'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
phase "storm alone" 0
storm=preempt phase "preempt storm alone" 0

"$ember" daemon --data-dir "$data/cpu" --listen 127.0.0.1:0 --log-level warn >"$out/offcpu-daemon-cpu.log" 2>&1 &
d=$!; sleep "$warm"
phase "ember, cpu" "$d"
storm=preempt phase "ember, cpu, preempt" "$d"
kill -TERM "$d"; wait "$d" || true

# A port no other daemon on this shared host holds.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ember" daemon --data-dir "$data/offcpu" --listen 127.0.0.1:$port --offcpu --log-level warn >"$out/offcpu-daemon-offcpu.log" 2>&1 &
d=$!; sleep "$warm"
# The counters appear with the first interval the pipeline closes.
offcpu_metrics() { curl -s "http://127.0.0.1:$port/metrics" | grep '^ember_offcpu_switches_total' || true; }
for _ in $(seq 60); do m0=$(offcpu_metrics); [ -n "$m0" ] && break; sleep 1; done
phase "ember, --offcpu" "$d" on_switch
# The counters move as each 10 s interval closes: wait for the phase's.
sleep 12; m1=$(offcpu_metrics)
storm=preempt phase "ember, --offcpu, preempt" "$d" on_switch
sleep 12; m2=$(offcpu_metrics)
# The same without the storm: whatever else the host runs, whose blocks
# are more often at new places, walked.
storm=none phase "  (no storm)" "$d" on_switch
kill -TERM "$d"; wait "$d" || true
# What the tracker did with the switches during each storm, host-wide.
echo "during the storm:"
join <(echo "$m0" | sort) <(echo "$m1" | sort) | awk '{printf "  %s %d\n", $1, $3 - $2}'
echo "during the preempt storm:"
join <(echo "$m1" | sort) <(echo "$m2" | sort) | awk '{printf "  %s %d\n", $1, $3 - $2}'


if [ "${BPFTRACE:-1}" = 0 ]; then
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
cat >"$out/offcputime.bt" <<'BT'
tracepoint:sched:sched_switch {
  if (args->prev_pid != 0) {
    @ts[args->prev_pid] = nsecs;
    @ks[args->prev_pid] = kstack;
    @us[args->prev_pid] = ustack;
  }
  $t = @ts[args->next_pid];
  if ($t != 0) {
    @off[@ks[args->next_pid], @us[args->next_pid]] = sum(nsecs - $t);
    delete(@ts[args->next_pid]);
  }
}
// Printing @off names every stack's frames, which took over 15 minutes on
// a busy host: the cost measured here is the tracing, so it is dropped.
END { clear(@ts); clear(@ks); clear(@us); clear(@off); }
BT
bpftrace "$out/offcputime.bt" >"$out/offcputime.out" 2>&1 &
b=$!; sleep "$warm"
phase "bpftrace" "$b" sched_switch
storm=preempt phase "bpftrace, preempt" "$b" sched_switch
kill -INT "$b"; wait "$b" || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
