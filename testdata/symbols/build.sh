#!/bin/sh
# Builds the symbolizer's fixtures. The binaries are committed so tests
# need no compiler; rerun this after changing a source. Prints each
# command it runs. Built on Debian 12 x86_64 with gcc/g++ 12.2.0, rustc
# 1.95.0 and go 1.26.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

run() {
	echo "+ $*"
	"$@"
}

# C with an inlined function. inline keeps its DWARF; inline-debuglink is
# stripped and names inline.debug in .gnu_debuglink (with its CRC);
# inline-buildid is stripped with no debuglink, its debug file found by
# build ID under debug/.build-id, laid out like /usr/lib/debug.
# Source paths in the debug info are made machine independent:
# /src/ember/testdata/symbols/... whatever the checkout's path.
PREFIX="-fdebug-prefix-map=$root=/src/ember"
CFLAGS="-O2 -g $PREFIX -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -Wl,--build-id=sha1"
run gcc $CFLAGS -o inline inline.c
objdump -d --no-show-raw-insn inline | awk '$2 == "<alpha>:" { on = 1; next } on && /^$/ { exit } on' |
	grep -q 'push *%rbp' || { echo "inline: alpha has no frame-pointer prologue" >&2; exit 1; }
run objcopy --only-keep-debug inline inline.debug
run objcopy --strip-all --add-gnu-debuglink=inline.debug inline inline-debuglink
run objcopy --strip-all inline inline-buildid
# Compressed DWARF (SHF_COMPRESSED, zlib), as some distributions ship it.
run objcopy --compress-debug-sections=zlib inline inline-compressed
id=$(readelf -n inline | awk '/Build ID/ { print $3 }')
run rm -rf debug
run mkdir -p "debug/.build-id/$(echo "$id" | cut -c1-2)"
run cp inline.debug "debug/.build-id/$(echo "$id" | cut -c1-2)/$(echo "$id" | cut -c3-).debug"

# MiniDebugInfo the way Fedora makes it: the function symbols .dynsym
# lacks, in a debug-only ELF, xz-compressed into .gnu_debugdata of the
# stripped binary.
nm -D inline --format=posix --defined-only | awk '{ print $1 }' | sort >dynsyms.tmp
nm inline --format=posix --defined-only | awk '$2 == "T" || $2 == "t" { print $1 }' | sort >funcsyms.tmp
comm -13 dynsyms.tmp funcsyms.tmp >keep.tmp
run objcopy --only-keep-debug inline mini.tmp
run objcopy -S --remove-section .gdb_index --remove-section .comment --keep-symbols=keep.tmp mini.tmp mini.tmp
run xz -f mini.tmp
run objcopy --add-section .gnu_debugdata=mini.tmp.xz inline-buildid inline-minidebuginfo
rm -f dynsyms.tmp funcsyms.tmp keep.tmp mini.tmp mini.tmp.xz

# C++ with templates and namespaces.
run g++ -O1 -g $PREFIX -fno-omit-frame-pointer -Wl,--build-id=sha1 -o templates templates.cc

# Rust, no_std to stay small, with each symbol mangling scheme (legacy is
# the default of stable rustc).
RUSTFLAGS="-C panic=abort -C opt-level=1 -C debuginfo=2 -C link-arg=-lc --edition 2021 --remap-path-prefix=$root=/src/ember"
run rustc $RUSTFLAGS -o rust-legacy rust/mangling.rs
run rustc $RUSTFLAGS -C symbol-mangling-version=v0 -o rust-v0 rust/mangling.rs

# Go without symbol table or DWARF.
cd "$root"
run go build -buildvcs=false -trimpath -ldflags='-s -w' -o testdata/symbols/gostripped ./testdata/symbols/gosrc
