#!/usr/bin/env bash
# Issue 20's measurements: Ember (this build, NEW, and an older one, OLD)
# beside `perf record --call-graph fp` on the same processes, in the same
# seconds, each at 99 Hz; shares by bench/foldshare.py. Run as root:
#   bench/frames.sh NEW OLD go|cgo|gocompiler|node|terser|java|rustc
set -euo pipefail
cd "$(dirname "$0")/.."
new=$1 old=$2 what=$3
out=bench/out/frames
mkdir -p "$out"
share=bench/foldshare.py
rm -f "$out"/*.log
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# sample PID SECONDS: NEW, OLD and perf on one process at once.
sample() {
	local pid=$1 secs=$2
	"$new" record -F 99 -p "$pid" -d "${secs}s" --format folded -o "$out/new.folded" 2>"$out/new.log" &
	local a=$!
	"$old" record -F 99 -p "$pid" -d "${secs}s" --format folded -o "$out/old.folded" 2>"$out/old.log" &
	local b=$!
	perf record -q -e cpu-clock -F 99 --call-graph fp -p "$pid" -o "$out/perf.data" -- sleep "$secs" 2>/dev/null &
	local c=$!
	wait "$a" "$b" "$c" || true # perf -p exits non-zero when the target exits first
	perf script -i "$out/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$out/perf.txt"
}

# tree CMD...: NEW and OLD each record the command's whole process tree
# (record -- CMD) under perf, which records the same tree.
tree() {
	perf record -q -e cpu-clock -F 99 --call-graph fp -o "$out/perf.data" -- \
		"$new" record -F 99 --format folded -o "$out/new.folded" -- \
		"$old" record -F 99 --format folded -o "$out/old.folded" -- "$@" 2>"$out/tree.log"
	perf script -i "$out/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$out/perf.txt"
}

report() { # COMM FUNC...
	local comm=$1
	shift
	for f in new old; do python3 $share --comm "$comm" "$out/$f.folded" "$@"; done
	python3 $share --perf --comm "$comm" "$out/perf.txt" "$@"
}

case $what in
go) # frameless leaf under goAlpha/goBeta/goGamma (50/30/20), and its own runtime/pprof
	for bin in go-frameless go-frameless-stripped; do
		testdata/unwind/$bin 12 "$out/own.pb.gz" >/dev/null 2>&1 &
		pid=$!
		sleep 0.5
		sample "$pid" 10
		wait "$pid" || true
		go tool pprof -traces "$out/own.pb.gz" >"$out/own.traces" 2>/dev/null
		echo "== $bin"
		report "${bin:0:15}" main.goAlpha main.goBeta main.goGamma
		python3 $share --pprof "$out/own.traces" main.goAlpha main.goBeta main.goGamma
	done
	;;
cgo) # Go calling C (testdata/unwind/go-cgo)
	testdata/unwind/go-cgo 12 >/dev/null &
	pid=$!
	sleep 0.5
	sample "$pid" 10
	wait "$pid" || true
	report go-cgo cspin main.viaC runtime.asmcgocall
	;;
gocompiler) # the Go compiler building Ember from scratch
	export GOCACHE=$PWD/$out/gocache GOFLAGS=-buildvcs=false
	rm -rf "$GOCACHE"
	tree go build -o /dev/null ./cmd/ember
	# runtime.mcall: the scheduler's stacks, whose goroutine left (the walk ends there)
	report compile runtime.gcBgMarkWorker runtime.systemstack runtime.mallocgc runtime.mcall
	grep -h "ember:" "$out/tree.log" || true
	;;
node) # a JS hot loop with --perf-basic-prof
	cat >"$out/hot.js" <<'JS'
function mix(x) { for (let i = 0; i < 200000; i++) { x ^= x << 13; x ^= x >>> 7; x ^= x << 17; } return x; }
function outer(x) { return mix(x) + 1; }
let s = 1, end = Date.now() + 10000;
while (Date.now() < end) s = outer(s);
console.log(s);
JS
	(cd "$out" && exec node --perf-basic-prof hot.js >/dev/null) & # its isolate logs go there
	pid=$!
	sleep 1
	sample "$pid" 8
	wait "$pid" || true
	report node mix outer "LazyCompile:" "JS:"
	rm -f "/tmp/perf-$pid.map"
	;;
terser) # node --perf-basic-prof running terser (npm install terser@5 in $TERSER)
	# The whole tree from its start: on a busy host `record -p` takes seconds
	# to load, past the warm-up, where V8 maps most of its new JIT pages.
	cat >"$out/terser.js" <<JS
require("fs").writeFileSync("node.pid", String(process.pid));
const { minify } = require("$TERSER/node_modules/terser");
const src = require("fs").readFileSync("$TERSER/node_modules/terser/dist/bundle.min.js", "utf8");
(async () => { const end = Date.now() + ${SECS:-15} * 1000; while (Date.now() < end) await minify(src, { compress: true, mangle: true }); })();
JS
	tree sh -c 'cd "$0" && exec node --perf-basic-prof terser.js >/dev/null' "$out" # its isolate logs there
	report node "JS:" minify Compressor "Builtins_"
	rm -f "/tmp/perf-$(cat "$out/node.pid").map"
	;;
java) # a JVM writing its perf map at exit
	tree java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer -cp testdata/java Hot 8
	report java Hot.spin Hot.alpha Hot.beta "[unknown in [anon]"
	rm -f /tmp/perf-*.map
	;;
rustc) # rustc (its run_compiler closure has a 540,080-byte frame) on 1,500 generated functions
	python3 - "$out/big.rs" <<'PY'
import sys
out = ["use std::collections::HashMap;"]
for i in range(1500):
    out.append(f"pub fn f{i}(v: &[u64], m: &mut HashMap<u64, u64>) -> u64 {{ let mut s = {i}u64; "
               f"for (j, x) in v.iter().enumerate() {{ s = s.wrapping_mul(31).wrapping_add(*x ^ j as u64); "
               f"if s % {i + 7} == 3 {{ *m.entry(s).or_insert(0) += 1; }} }} "
               f"let w: Vec<String> = v.iter().map(|x| format!(\"{{}}-{{}}\", x, s)).collect(); s + w.len() as u64 }}")
out.append("fn main() { let v: Vec<u64> = (0..10).collect(); let mut m = HashMap::new(); let mut t = 0u64;")
out += [f"  t = t.wrapping_add(f{i}(&v, &mut m));" for i in range(1500)]
out.append('  println!("{}", t); }')
open(sys.argv[1], "w").write("\n".join(out))
PY
	tree rustc -C opt-level=0 -o "$out/big" "$out/big.rs"
	report rustc run_compiler rustc_interface main
	;;
esac
grep -h "ember:" "$out"/*.log 2>/dev/null || true
