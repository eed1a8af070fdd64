#!/usr/bin/env bash
# Synthetic background load like a shared build host's: busy loops and a
# compile loop, for running the eBPF tests where CI runs them (issue 15).
#
#   bench/load.sh [-b busy] [-c compiles] [-w warmup-seconds] [-t max-seconds] [-- command ...]
#
# With a command, it runs the command under load after the warm-up, stops the
# load and exits with the command's status; without one, it loads the machine
# until interrupted or for -t seconds. Defaults: 8 busy loops per CPU and one
# compile loop (`go build -a std`, or cc on a generated file without Go),
# which hold the load average near 20 on 2 CPUs. It prints the 1-minute load
# average it saw (every 5 s) when it stops.
#
# Each worker runs in its own process group, and all of them are killed when
# this script exits for any reason, SIGKILL included (see monitor).
set -euo pipefail

busy=$((8 * $(nproc)))
compiles=1
warm=20
max=3600
while getopts b:c:w:t: opt; do
  case $opt in
    b) busy=$OPTARG ;;
    c) compiles=$OPTARG ;;
    w) warm=$OPTARG ;;
    t) max=$OPTARG ;;
    *) echo "usage: $0 [-b busy] [-c compiles] [-w warmup-seconds] [-t max-seconds] [-- command ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

self=$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-load.XXXXXX")
groups=()
sleeper=

stop() {
  for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -s "$tmp/loadavg" ]; then
    sort -n "$tmp/loadavg" | awk '{v[NR] = $1} END {printf "load.sh: 1-minute load average over %d readings: min %s, median %s, max %s\n", NR, v[1], v[int((NR + 1) / 2)], v[NR]}' >&2
  fi
  rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The busy loops check that this script is still alive between short bursts.
alive() { kill -0 "$self" 2>/dev/null; }

busy_loop() {
  while alive; do
    local i=0
    while [ "$i" -lt 100000 ]; do i=$((i + 1)); done
  done
}

compile_loop() {
  # Its own build cache and temp files, so it never touches the caller's
  # cache or module cache, and always has work to do (-a).
  export GOCACHE="$tmp/gocache$1" GOTMPDIR="$tmp" GOFLAGS= GOTOOLCHAIN=local GOENV=off
  cd "$tmp"
  if command -v go >/dev/null; then
    while alive; do go build -a -o /dev/null std >/dev/null 2>&1 || sleep 1; done
  else
    # A file big enough that each compile takes a while: many small functions.
    for i in $(seq 3000); do echo "int f$i(int x) { return x * $i + (x >> ($i % 7)); }"; done >"$tmp/big$1.c"
    while alive; do cc -O2 -c -o /dev/null "$tmp/big$1.c" || sleep 1; done
  fi
}

# The monitor records the load average and, should this script die without
# its trap (SIGKILL), stops every worker within a second and cleans up.
monitor() {
  local n=0
  while alive; do
    [ $((n % 5)) -ne 0 ] || cut -d' ' -f1 /proc/loadavg >>"$tmp/loadavg"
    n=$((n + 1))
    sleep 1
  done
  for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  rm -rf "$tmp"
}

set -m # each background job gets its own process group
for _ in $(seq "$busy"); do busy_loop & groups+=($!); done
for c in $(seq "$compiles"); do compile_loop "$c" & groups+=($!); done
monitor & groups+=($!)
set +m
echo "load.sh: $busy busy loops, $compiles compile loops on $(nproc) CPUs" >&2

# Sleeping in the background lets a signal's trap run at once.
pause() { sleep "$1" & sleeper=$!; wait "$sleeper" || true; sleeper=; }
if [ $# -eq 0 ]; then
  pause "$max"
  exit 0
fi
pause "$warm"
echo "load.sh: load average $(cut -d' ' -f1-3 /proc/loadavg); running: $*" >&2
rc=0
"$@" || rc=$?
echo "load.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; exit status $rc" >&2
exit "$rc"
