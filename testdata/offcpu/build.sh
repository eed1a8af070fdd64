#!/bin/sh
# Rebuilds the off-CPU fixture. Run from anywhere; prints each command it runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
echo "+ gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -pthread -o waits waits.c"
gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -pthread -o waits waits.c
