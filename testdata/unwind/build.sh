#!/bin/sh
# Rebuilds the unwinding fixtures: the same programs with and without frame
# pointers, all calling through Debian's libc (built without them). Checks
# that the -nofp builds really have no frame-pointer prologue in their hot
# functions. Run from anywhere; prints each command it runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

run() {
	echo "+ $*"
	"$@"
}

run gcc -O2 -g -fomit-frame-pointer -o qsort-nofp qsort.c
run gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -o qsort-fp qsort.c
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -o chain-nofp chain.c
run gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls -o chain-fp chain.c
# CFI only in .debug_frame (the start files still bring a little .eh_frame).
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -fno-asynchronous-unwind-tables -o chain-debugframe chain.c
run g++ -O2 -g -fomit-frame-pointer -o sort-cpp sort.cpp
run gcc -O2 -g -fomit-frame-pointer -fPIC -shared -o libplugin.so plugin.c
# Five PT_LOADs, the last one executable, as BOLT lays out its libraries.
run gcc -O2 -g -fomit-frame-pointer -fPIC -shared -Wl,--section-start=far_text=0x201000 -o libsplit.so split.c
if [ "$(readelf -lW libsplit.so | grep -c LOAD)" != 5 ]; then
	echo "libsplit.so: not five PT_LOADs" >&2
	exit 1
fi
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -o dlopen-main dlopen-main.c -ldl
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -o jit jit.c # asm_builtin: no CFI
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -o burst burst.c
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -o bigframe bigframe.c
run gcc -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls -o nocfi nocfi.c
# Go 1.26: main.spin must stay frameless (no PUSHQ BP), or the test proves nothing.
(cd ../.. && run go build -buildvcs=false -trimpath -o testdata/unwind/go-frameless ./testdata/unwind/gosrc)
(cd ../.. && run go build -buildvcs=false -trimpath -ldflags=-s -o testdata/unwind/go-frameless-stripped ./testdata/unwind/gosrc)
(cd ../.. && run go build -buildvcs=false -trimpath -o testdata/unwind/go-cgo ./testdata/unwind/cgosrc)
(cd ../.. && run go build -buildvcs=false -trimpath -o testdata/unwind/go-gc ./testdata/unwind/gcsrc)
if go tool objdump -s '^main\.spin$' go-frameless | grep -q 'PUSHQ BP'; then
	echo "go-frameless: main.spin pushes a frame pointer" >&2
	exit 1
fi
run /root/.cargo/bin/rustc -C opt-level=2 -C force-frame-pointers=no -C debuginfo=0 -C strip=debuginfo -o sort-rust sort.rs

for f in qsort-nofp:cmp_items chain-nofp:level5 sort-cpp:_ZNK4SlowclEmm; do
	bin=${f%%:*} fn=${f#*:}
	if objdump -d --no-show-raw-insn "$bin" | awk -v f="<$fn>:" '$2 == f { on = 1; next } on && /^$/ { exit } on' |
		grep -q 'push *%rbp'; then
		echo "$bin: $fn pushes a frame pointer" >&2
		exit 1
	fi
done
echo "ok"
