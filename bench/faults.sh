#!/usr/bin/env bash
# Fault injection against a real `ember daemon`, for docs/benchmarks.md
# ("Faults"): kill -9 and SIGTERM loops, a full disk while running, at stop
# and at start (on a 96 MiB tmpfs), and damage to each kind of file of the
# store. Prints one line per case: what `ember store check` found stored
# before and after, and the outcome. The daemon runs with 2 s intervals and
# --unwind fp (the store's behaviour does not depend on the unwinder, and
# fp keeps the unwind cache off the small filesystem).
# Run as root from the repository root:  bench/faults.sh [rounds]
# EMBER_DAEMON=path runs that binary as the daemon (an older build, to
# compare), while this tree's build checks and repairs.
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
out=bench/out
mkdir -p "$out"
go build -o "$out/ember" ./cmd/ember || exit 1
ember=$PWD/$out/ember
daemon_bin=${EMBER_DAEMON:-$ember}
work=$(mktemp -d /tmp/ember-faults.XXXXXX)
mnt=$work/mnt
mkdir "$mnt"
mount -t tmpfs -o size=96m tmpfs "$mnt" || exit 1
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  umount -l "$mnt" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
flags=(--listen 127.0.0.1:0 --interval 2s --drain-interval 1s --min-free-disk 24MiB --unwind fp --log-level info)

# start DIR LOG: start the daemon in the background; pid is its process id.
start() {
  "$daemon_bin" daemon --data-dir "$1" "${flags[@]}" >>"$2" 2>&1 &
  pid=$!
}

# ready LOG: wait until the daemon samples (0) or has exited (1), 60 s at most.
ready() {
  for _ in $(seq 600); do
    grep -q "ember daemon sampling" "$1" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# stop SIGNAL: signal the daemon and wait for it; status is its exit status.
stop() {
  kill "-$1" "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  status=$?
  pid=
}

# stored DIR: "N intervals, M samples" as `ember store check` reads it, or
# "refused: ..." with the first words of its error.
stored() {
  local r
  r=$("$ember" store check --data-dir "$1" 2>&1)
  if [ $? -ne 0 ]; then
    echo "refused: $(echo "$r" | tail -1 | sed 's/^ember: storage: [^ ]*: //; s/^the store is damaged: //' | cut -c1-60)"
  elif echo "$r" | grep -q "history:     empty"; then
    echo "0 intervals, 0 samples"
  else
    echo "$r" | sed -n 's/^history: *\([0-9]*\) intervals, \([0-9]*\) samples.*/\1 intervals, \2 samples/p'
  fi
}
intervals() { echo "$1" | awk '$1 ~ /^[0-9]+$/ { print $1; next } { print 0 }'; }
fingerprint() { (cd "$1" && find . -type f ! -name LOCK -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
fill() { dd if=/dev/zero of="$mnt/ballast" bs=1M 2>/dev/null; dd if=/dev/zero of="$mnt/ballast" bs=4k oflag=append conv=notrunc 2>/dev/null; }
line() { printf '%-22s | %-32s | %-32s | %s\n' "$1" "$2" "$3" "$4"; }
rand() { awk -v lo="$1" -v hi="$2" -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", lo + rand() * (hi - lo) }'; }

line case before after outcome

# acked LOG: intervals the running daemon has stored, from its /metrics.
acked() {
  local api
  api=$(sed -n 's/.*ember daemon sampling.* api=\([0-9.:]*\).*/\1/p' "$1" | tail -1)
  curl -s --max-time 5 "http://$api/metrics" | awk '/^ember_intervals_total\{outcome="stored"\}/ { print $2 + 0; found = 1 } END { if (!found) print 0 }'
}

# kill -9 at a random point, rounds times: every interval the daemon had
# acknowledged (its /metrics, read just before the kill) must be stored.
d=$mnt/kill9 log=$work/kill9.log
prev=0 lost=0 acks=0 refusals=0
for _ in $(seq "$rounds"); do
  : >"$log"
  start "$d" "$log"
  ready "$log" || { refusals=$((refusals + 1)); stop KILL; continue; }
  sleep "$(rand 3 9)"
  a=$(acked "$log")
  stop KILL
  now=$(stored "$d")
  case $now in refused*) refusals=$((refusals + 1)); continue ;; esac
  n=$(intervals "$now")
  [ $((prev + a)) -gt "$n" ] && lost=$((lost + prev + a - n))
  acks=$((acks + a))
  prev=$n
done
line "kill -9 x$rounds" "0 intervals" "$now" "reopened $((rounds - refusals))/$rounds; acknowledged $acks, lost $lost"
rm -rf "$d"

# SIGTERM at a random point, rounds times: what the daemon says it wrote
# must be stored; intervals it dropped are counted.
d=$mnt/term log=$work/term.log
written=0 longest=0
for _ in $(seq "$rounds"); do
  : >"$log"
  start "$d" "$log"
  ready "$log" || { stop KILL; continue; }
  sleep "$(rand 2 6)"
  t=$(date +%s.%N)
  stop TERM
  took=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  longest=$(awk -v a="$longest" -v b="$took" 'BEGIN { print (b > a) ? b : a }')
  w=$(sed -n 's/.*ember daemon stopped" intervals_written=\([0-9]*\).*/\1/p' "$log")
  written=$((written + ${w:-0}))
  cat "$log" >>"$work/term-all.log"
done
after=$(stored "$d")
cancelled=$(grep -c 'context canceled' "$work/term-all.log")
dropped=$(sed -n 's/.*intervals_dropped=\([0-9]*\).*/\1/p' "$work/term-all.log" | awk '{ s += $1 } END { print s + 0 }')
line "SIGTERM x$rounds" "0 intervals" "$after" "lost $((written - $(intervals "$after"))); daemon said $written written, $dropped dropped ($cancelled 'context canceled'); longest stop ${longest} s"
rm -rf "$d"

# Disk full while running: the daemon goes on sampling, drops intervals,
# and stores again once space is back.
d=$mnt/full-run log=$work/full-run.log
start "$d" "$log"
ready "$log"
sleep 5
fill
sleep 8
alive=no
kill -0 "$pid" 2>/dev/null && alive=yes
rm -f "$mnt/ballast"
sleep 8
stop TERM
after=$(stored "$d")
bus=$(grep -c SIGBUS "$log")
line "disk full, running" "0 intervals" "$after" "alive while full: $alive; exit $status; SIGBUS $bus; 'disk nearly full' logged $(grep -c 'disk nearly full' "$log")x"
rm -rf "$d"

# Disk full at stop, then at start.
d=$mnt/full-stop log=$work/full-stop.log
start "$d" "$log"
ready "$log"
sleep 6
fill
stop TERM
w=$(sed -n 's/.*ember daemon stopped" intervals_written=\([0-9]*\).*/\1/p' "$log")
rm -f "$mnt/ballast"
after=$(stored "$d")
line "disk full at stop" "0 intervals" "$after" "exit $status; SIGBUS $(grep -c SIGBUS "$log"); daemon said ${w:-?} written; $(grep -o 'left the write-ahead log' "$log" | head -1)"

before=$after
log=$work/full-start.log
fill
start "$d" "$log"
sleep 6
waiting=no
kill -0 "$pid" 2>/dev/null && grep -q "too full to open" "$log" && waiting=yes
rm -f "$mnt/ballast"
ready "$log"
opened=$?
sleep 4
stop TERM
after=$(stored "$d")
line "disk full at start" "$before" "$after" "waited while full: $waiting; opened once freed: $([ $opened = 0 ] && echo yes || echo no); exit $status; SIGBUS $(grep -c SIGBUS "$log")"
rm -rf "$d"

# Damage: each case damages a copy of a store the daemon closed (or, for
# the write-ahead log, one it was killed on), then starts the daemon on it.
base=$work/base log=$work/base.log
start "$base" "$log"; ready "$log"; sleep 9; stop TERM
crashed=$work/crashed log=$work/crashed.log
start "$crashed" "$log"; ready "$log"; sleep 9; stop KILL

damage() {
  local name=$1 from=$2 how=$3 slug before after fp outcome unchanged w
  slug=$(echo "$1" | tr -c 'a-zA-Z0-9\n' '-')
  local c=$work/c-$slug log=$work/c-$slug.log
  cp -a "$from" "$c"
  before=$(stored "$c")
  (cd "$c" && eval "$how")
  fp=$(fingerprint "$c")
  start "$c" "$log"
  if ready "$log"; then
    sleep 3
    stop TERM
    after=$(stored "$c")
    w=$(sed -n 's/.*ember daemon stopped" intervals_written=\([0-9]*\).*/\1/p' "$log")
    outcome="started, wrote ${w:-0}; lost $(($(intervals "$before") + ${w:-0} - $(intervals "$after"))) intervals"
    case $after in refused*) outcome="started, wrote ${w:-0}; the history does not read" ;; esac
  else
    stop KILL
    after="(daemon refused)"
    unchanged=changed
    [ "$(fingerprint "$c")" = "$fp" ] && unchanged="nothing changed"
    outcome="refused, $unchanged: $(grep '^ember: ' "$log" | tail -1 | sed 's/^ember: storage: [^ ]*: //; s/^the store is damaged: //' | cut -c1-80)"
    grep -q SIGBUS "$log" && outcome="crashed: SIGBUS"
    grep -q '^panic' "$log" && outcome="crashed: $(grep -m1 '^panic' "$log" | cut -c1-80)"
  fi
  case $outcome in
    refused*|*"does not read"*)
      if "$ember" store repair --data-dir "$c" --to "$c.repaired" >"$c.repair.log" 2>&1; then
        outcome="$outcome; repair keeps $(intervals "$(stored "$c.repaired")")"
      else
        outcome="$outcome; repair: $(tail -1 "$c.repair.log" | sed 's/^ember: storage: [^ ]*: //' | cut -c1-60)"
      fi
      ;;
  esac
  line "$name" "$before" "$after" "$outcome"
}
damage "MANIFEST missing" "$base" 'rm badger/MANIFEST'
damage "MANIFEST cut 10 B" "$base" 'truncate -s -10 badger/MANIFEST'
damage ".sst cut 100 B" "$base" 'truncate -s -100 "$(ls badger/*.sst | head -1)"'
damage ".sst block overwritten" "$base" 'printf garbage-garbage | dd of="$(ls badger/*.sst | head -1)" bs=1 seek=64 conv=notrunc 2>/dev/null'
damage ".vlog cut to half" "$base" 'v=$(ls badger/*.vlog | tail -1); truncate -s $(($(stat -c %s "$v") / 2)) "$v"'
damage ".mem cut to 4 KiB" "$crashed" 'm=$(ls badger/*.mem | tail -1); truncate -s 4096 "$m"'
damage "marker damaged" "$base" 'printf "\0\1garbage" > EMBER-STORE'
damage "badger/ removed" "$base" 'rm -r badger'
