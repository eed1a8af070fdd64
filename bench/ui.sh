#!/usr/bin/env bash
# Web UI load time for docs/benchmarks.md: from navigation to a drawn flame
# graph of the default view (1 hour, grouped by process) of a busy host, in
# headless Chromium against the API and UI over a store. Prints p50, p95
# and max over 20 cold loads (ranges the server has not seen: the store
# answers) and 9 cached ones (the flame-graph cache); see TestUILoadBenchmark
# for the ranges, which end at the store's last data.
#
# Run from the repository root: bench/ui.sh [-s] [-b] [store directory]
#   store: a store the daemon recorded (used as is: copy it first, the
#          test opens it read-write), or a directory to backfill with 2 hours
#          of package backfill's generated history (about 200 processes on
#          2 busy CPUs at 99 Hz, 10 s intervals) if it does not exist.
#   -s:    an `ember daemon` samples the host (99 Hz, into a throwaway data
#          directory) while the loads run, as on a host that runs Ember;
#          needs root.
#   -b:    on the busy host: bench/busyhost.sh runs for the whole
#          measurement (after UI_BENCH_BUSY_SETTLE seconds, 60, for the load
#          to build). As systemd runs deploy/ember.service, the server and
#          the sampler share a CPU cgroup of their own beside the load's,
#          at nice 5, the query threads at nice -5. Chromium, standing in
#          for the engineer's browser on a machine of its own, gets a third
#          cgroup. UI_BENCH_CGROUPS=0 leaves everything in the caller's
#          cgroup. Needs root.
# EMBER_UI_BENCH_WINDOW, EMBER_UI_BENCH_SHIFT and EMBER_UI_BENCH_QUERY pass
# through to the test.
set -euo pipefail
cd "$(dirname "$0")/.."
sampler=
busy=
while [ $# -gt 0 ]; do
  case "$1" in
  -s) sampler=1 ;;
  -b) busy=1 ;;
  *) break ;;
  esac
  shift
done
dir=${1:-bench/out/ui-store}
if [ ! -d "$dir" ]; then
  go run ./storage/internal/backfill/cmd/ember-backfill -dir "$dir" -hours 2
fi
dir=$(realpath "$dir")
work=$(mktemp -d /tmp/ember-ui.XXXXXX)
daemon=
busyhost=
cgroups=()
stop() {
  [ -z "$daemon" ] || { kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; }
  [ -z "$busyhost" ] || { kill "$busyhost" 2>/dev/null; wait "$busyhost" 2>/dev/null || true; }
  rm -rf "$work"
  [ ${#cgroups[@]} -eq 0 ] || sleep 2 # for the killed to exit
  for g in "${cgroups[@]}"; do
    # Whatever is left (a straggler of the load) goes back to the root.
    while read -r pid; do echo "$pid" >"$(dirname "$g")/cgroup.procs" 2>/dev/null || true; done <"$g/cgroup.procs"
    rmdir "$g" 2>/dev/null || true
  done
}
trap stop EXIT
mkdir -p bench/out
# Built before any load starts.
go test -c -o "$work/ui.test" ./ui
[ -z "$sampler" ] || go build -o "$work/ember" ./cmd/ember
# cgroup NAME: makes a CPU cgroup of the default weight (cgroup v2, or
# v1's cpu hierarchy) and adds it to cgroups.
cgroup() {
  local root=/sys/fs/cgroup
  if [ -f $root/cgroup.controllers ]; then
    grep -qw cpu $root/cgroup.subtree_control || echo +cpu >$root/cgroup.subtree_control
  else
    root=/sys/fs/cgroup/cpu
  fi
  mkdir -p "$root/ember-ui-bench-$1"
  cgroups+=("$root/ember-ui-bench-$1")
}
into() { :; }
niced=()
if [ -n "$busy" ]; then
  niced=(nice -n 5)
  export EMBER_UI_BENCH_QUERY_NICE=${EMBER_UI_BENCH_QUERY_NICE:--5}
  if [ "${UI_BENCH_CGROUPS:-1}" != 0 ]; then
    cgroup busy
    cgroup ember
    cgroup browser
    busy_procs=${cgroups[0]}/cgroup.procs
    ember_procs=${cgroups[1]}/cgroup.procs
    export EMBER_UI_BENCH_BROWSER_CGROUP=${cgroups[2]}/cgroup.procs
    into() { echo "$BASHPID" >"$1"; }
  fi
  : >bench/out/ui-busyhost.log
  (into "${busy_procs:-}" && exec bench/busyhost.sh) >bench/out/ui-busyhost.log 2>&1 &
  busyhost=$!
  until grep -q '^busy host ready' bench/out/ui-busyhost.log; do
    kill -0 "$busyhost" 2>/dev/null || { cat bench/out/ui-busyhost.log >&2; exit 1; }
    sleep 2
  done
  sleep "${UI_BENCH_BUSY_SETTLE:-60}"
  echo "ui load: on the busy host ($(grep '^busy host ready' bench/out/ui-busyhost.log | cut -d: -f2-)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi
if [ -n "$sampler" ]; then
  (into "${ember_procs:-}" && exec "${niced[@]}" "$work/ember" daemon --data-dir "$work/data" --listen 127.0.0.1:0) >"$work/daemon.log" 2>&1 &
  daemon=$!
  sleep 5
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "ui.sh: the sampling daemon did not start:" >&2
    cat "$work/daemon.log" >&2
    exit 1
  fi
  echo "ui load: an ember daemon (pid $daemon) samples the host beside the loads"
fi
log=bench/out/ui-test.log
if ! (into "${ember_procs:-}" && cd ui && EMBER_UI_BENCH_DIR="$dir" exec "${niced[@]}" "$work/ui.test" -test.run '^TestUILoadBenchmark$' -test.count=1 -test.v -test.timeout 60m) >"$log" 2>&1; then
  grep '^ui load' "$log" || true
  tail -20 "$log" >&2
  exit 1
fi
grep '^ui load' "$log"
[ -z "$busy" ] || echo "ui load: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
