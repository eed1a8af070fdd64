#!/bin/sh
# Rebuilds the hotspot fixtures and checks that every leaf sets up a frame
# pointer, without which its caller vanishes from frame-pointer stacks.
# Run from anywhere; prints each command it runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

run() {
	echo "+ $*"
	"$@"
}

run gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer \
	-o testdata/hotspot/hotspot testdata/hotspot/hotspot.c
run gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls \
	-o testdata/hotspot/deep testdata/hotspot/deep.c
run gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer \
	-o testdata/hotspot/forker testdata/hotspot/forker.c
run go build -buildvcs=false -trimpath \
	-o testdata/hotspot/hotspot-go ./testdata/hotspot/gosrc

for leaf in alpha beta gamma; do
	objdump -d --no-show-raw-insn testdata/hotspot/hotspot |
		awk -v f="<$leaf>:" '$2 == f { on = 1; next } on && /^$/ { exit } on' |
		grep -q 'push *%rbp' ||
		{ echo "hotspot: $leaf has no frame-pointer prologue" >&2; exit 1; }
	go tool objdump -s "^main\.$leaf\$" testdata/hotspot/hotspot-go | grep -q 'PUSHQ BP' ||
		{ echo "hotspot-go: main.$leaf has no frame-pointer prologue" >&2; exit 1; }
done
echo "ok: alpha, beta, gamma push a frame pointer in both binaries"
