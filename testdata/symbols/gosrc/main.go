// Command gostripped is built with -ldflags='-s -w': no symbol table and
// no DWARF, only .gopclntab, which the symbolizer reads names, lines and
// inlined calls from.
package main

import "os"

//go:noinline
func leaf(x uint64) uint64 {
	x ^= x << 13 // GO_LEAF_LINE
	return x ^ (x >> 7)
}

// scramble is small enough for the compiler to inline into caller.
func scramble(x uint64) uint64 {
	return x*0x9e3779b97f4a7c15 + 7 // GO_SCRAMBLE_LINE
}

//go:noinline
func caller(x uint64) uint64 {
	y := scramble(x)   // GO_INLINE_CALL_LINE
	return leaf(y) + 1 // GO_CALLER_LINE
}

func main() {
	os.Exit(int(caller(uint64(len(os.Args))) & 1))
}
