#!/usr/bin/env bash
# A busy host for the soak and for any figure that must hold under load
# (docs/benchmarks.md, "Busy host soak"). It runs until killed:
#   - BUSY_LOOPS busy loops: testdata/hotspot/hotspot, C with known hot spots;
#   - a compile loop: gcc -O2 over a generated 8-file C project, forever;
#   - process churn: bench/busyhost/launcher fork+execs BUSY_STARTS_PER_SEC
#     programs a second, each a new PID: /bin/true, and programs that burn a
#     few hundred ms (BUSY_BURN_MS) or a few ms of CPU and exit, in C, Go,
#     Python and Node (comm churn-*);
#   - long-lived programs with known hot spots (hot_a 60%, hot_b 40%, 5 ms of
#     CPU every 100 ms) in C, C++, Rust, Go, Python, Node and Java (comm ll-*).
# QUIET=1 leaves only the busy loops and the long-lived programs.
# Settings (environment): BUSY_STARTS_PER_SEC (50), BUSY_COMPILE (1),
# BUSY_LOOPS (2), BUSY_BURN_MS (200), BUSY_MAX_CHILDREN (200), QUIET (0).
# Binaries are built once into bench/out/busyhost/. It prints "busy host
# ready" when everything runs, and the launcher's counts every 10 s.
# Stopping it (TERM, INT or Ctrl-C) kills its whole process group.
# Run as root from the repository root:
#   bench/busyhost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Lead our own process group, so that cleanup can kill every descendant by
# group, whoever started us (setsid keeps the PID when we are not a leader).
if [ "$(ps -o pgid= $$ | tr -d ' ')" != "$$" ]; then
  exec setsid "$0" "$@"
fi
export PATH=$PATH:/usr/local/go/bin:$HOME/.cargo/bin
rate=${BUSY_STARTS_PER_SEC:-50}
compile=${BUSY_COMPILE:-1}
loops=${BUSY_LOOPS:-2}
burn_ms=${BUSY_BURN_MS:-200}
max_children=${BUSY_MAX_CHILDREN:-200}
quiet=${QUIET:-0}
src=bench/busyhost
bin=bench/out/busyhost
mkdir -p "$bin"
tmp=$(mktemp -d /tmp/busyhost.XXXXXX)

cleanup() {
  trap '' TERM INT
  kill -TERM -- -$$ 2>/dev/null || true
  sleep 1
  # Whatever ignored TERM (none should) goes the hard way; not ourselves.
  for pid in $(pgrep -g $$); do
    if [ "$pid" != $$ ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
  if [ -n "${node_ll:-}" ]; then rm -f "/tmp/perf-$node_ll.map"; fi
  echo "busy host stopped"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# fresh reports whether $1 exists and is newer than every later argument.
fresh() {
  local out=$1; shift
  [ -e "$out" ] || return 1
  for f in "$@"; do [ "$out" -nt "$f" ] || return 1; done
}
cflags="-O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer"
fresh "$bin/launcher" "$src/launcher.c" || gcc -O2 -Wall -o "$bin/launcher" "$src/launcher.c"
fresh "$bin/churn-c" "$src/burn.c" || gcc $cflags -o "$bin/churn-c" "$src/burn.c"
fresh "$bin/ll-c" "$src/burn.c" || gcc $cflags -o "$bin/ll-c" "$src/burn.c"
fresh "$bin/ll-cpp" "$src/burn.cpp" || g++ $cflags -o "$bin/ll-cpp" "$src/burn.cpp"
fresh "$bin/ll-rust" "$src/burn.rs" ||
  rustc -O -g -C force-frame-pointers=yes -o "$bin/ll-rust" "$src/burn.rs"
fresh "$bin/churn-go" "$src/burngo/main.go" || go build -o "$bin/churn-go" "./$src/burngo"
cp -f "$bin/churn-go" "$bin/ll-go"
fresh "$bin/Burn.class" "$src/Burn.java" || javac -d "$bin" "$src/Burn.java"
# The interpreters run under their own names (comm comes from the name
# exec'd), so short- and long-lived processes tell apart in a profile.
python=$(pyenv root)/versions/3.12.1/bin/python3.12
for name in churn-py ll-py; do ln -sf "$python" "$bin/$name"; done
for name in churn-node ll-node; do ln -sf "$(command -v node)" "$bin/$name"; done
ln -sf "$(readlink -f "$(command -v java)")" "$bin/ll-java"
here=$(pwd)

for _ in $(seq "$loops"); do testdata/hotspot/hotspot 1e9 & done

if [ "$quiet" = 1 ]; then compile=0 rate=0; fi
if [ "$compile" = 1 ]; then
  # Eight files of 150 functions each: about a second of cc1 per file.
  mkdir -p "$tmp/proj"
  for f in $(seq 8); do
    awk -v f="$f" 'BEGIN {
      for (i = 0; i < 150; i++) {
        printf "double f%d_%d(double *v, int n) { double s = 0; for (int i = 0; i < n; i++) { s += v[i] * %d.5; if (s > %d) s /= 3; } return s; }\n", f, i, i, i * 7 + f
      }
    }' >"$tmp/proj/m$f.c"
  done
  printf 'int main(void) { return 0; }\n' >"$tmp/proj/main.c"
  (cd "$tmp/proj" && while :; do
    for c in *.c; do gcc -O2 -c "$c" -o "${c%.c}.o"; done
    gcc -o prog ./*.o
  done) &
fi

if [ "$quiet" != 1 ] && [ "$rate" != 0 ]; then
  # One cycle of 100 starts (two seconds at the default rate): four
  # programs burning BUSY_BURN_MS of CPU (C, Go, Python, Node), eight
  # burning 5 ms (C, Go, Python), 88 /bin/true. At 50 a second and 200 ms
  # that asks about 0.6 of a core (Node's start alone is 0.15 s of CPU here),
  # so the backlog of programs waiting for a CPU stays finite beside the loops.
  {
    echo "$here/$bin/churn-c $burn_ms"
    echo "$here/$bin/churn-go $burn_ms"
    echo "$here/$bin/churn-py $here/$src/burn.py $burn_ms"
    echo "$here/$bin/churn-node $here/$src/burn.js $burn_ms"
    for short in churn-c churn-go churn-py churn-c churn-go churn-py churn-c churn-go; do
      if [ "$short" = churn-py ]; then
        echo "$here/$bin/churn-py $here/$src/burn.py 5"
      else
        echo "$here/$bin/$short 5"
      fi
      for _ in $(seq 11); do echo /bin/true; done
    done
  } >"$tmp/churn.txt"
  # Raised so that the load it is there to make does not starve its rate
  # (its children go back to nice 0); it needs little CPU itself.
  nice -n -10 "$bin/launcher" "$rate" "$max_children" "$tmp/churn.txt" 0 &
fi

duty="5 100"
"$bin/ll-c" $duty &
"$bin/ll-cpp" $duty &
"$bin/ll-rust" $duty &
"$bin/ll-go" $duty &
"$bin/ll-py" "$src/burn.py" $duty &
# A perf map names the JIT frames of the long-lived Node program.
# Run from $tmp: with it, node also writes a V8 log to its working folder.
(cd "$tmp" && exec "$here/$bin/ll-node" --perf-basic-prof "$here/$src/burn.js" $duty) &
node_ll=$!
"$bin/ll-java" -XX:+PreserveFramePointer -cp "$bin" Burn $duty &

echo "busy host ready: loops=$loops compile=$compile starts_per_sec=$rate burn_ms=$burn_ms quiet=$quiet pgid=$$"
wait
