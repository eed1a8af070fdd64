#!/bin/sh
# Builds the ELF fixtures the symbolizer tests read. The binaries are
# committed so tests need no compiler; rerun this after changing a source.
# Built with gcc 12.2.0 (Debian 12.2.0-14+deb12u1) on x86_64.
set -eu
cd "$(dirname "$0")"
CFLAGS="-O1 -g0 -fno-omit-frame-pointer -fno-inline -Wl,--build-id=sha1"
gcc $CFLAGS -fPIE -pie -o prog-pie prog.c
gcc $CFLAGS -fno-pie -no-pie -o prog-nopie prog.c
# The library is linked at a non-zero base so its ELF addresses differ from
# its file offsets, as in prelinked or hand-linked libraries.
gcc $CFLAGS -fPIC -shared -Wl,-Ttext-segment=0x200000 -o libember.so libember.c
gcc $CFLAGS -fPIE -pie -o uselib uselib.c -L. -lember -Wl,-rpath,'$ORIGIN'
# Stripped copies: the executable keeps no function symbols at all, the
# library keeps only .dynsym (its exported functions).
strip -o prog-stripped prog-pie
strip -o libember-stripped.so libember.so
