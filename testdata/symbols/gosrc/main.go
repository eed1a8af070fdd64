// Command gostripped is built with -ldflags='-s -w': no symbol table and
// no DWARF, only .gopclntab, which the symbolizer reads names and lines
// from.
package main

import "os"

//go:noinline
func leaf(x uint64) uint64 {
	x ^= x << 13 // GO_LEAF_LINE
	return x ^ (x >> 7)
}

//go:noinline
func caller(x uint64) uint64 {
	return leaf(x) + 1 // GO_CALLER_LINE
}

func main() {
	os.Exit(int(caller(uint64(len(os.Args))) & 1))
}
