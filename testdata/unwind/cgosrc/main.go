// Command go-cgo calls a C function from Go for the given seconds: an
// externally linked binary, whose .text starts with C code before Go's and
// whose .eh_frame covers the C part only. Its unwind table takes Go's rows
// from .gopclntab (offsets from runtime.text, found in the module data) and
// the C rows from .eh_frame.
//
// Usage: go-cgo [seconds]   (default 10)
//
// Build (see ../build.sh): go build -buildvcs=false -trimpath -o go-cgo ./cgosrc
package main

/*
#include <stdint.h>
__attribute__((noinline)) uint64_t cspin(uint64_t x, int n) {
	for (int i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

//go:noinline
func viaC(x uint64) uint64 { return uint64(C.cspin(C.uint64_t(x), 100000)) }

func main() {
	seconds := 10.0
	if len(os.Args) > 1 {
		if n, err := strconv.ParseFloat(os.Args[1], 64); err == nil && n > 0 {
			seconds = n
		}
	}
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	s := uint64(1)
	for time.Now().Before(end) {
		s = viaC(s)
	}
	fmt.Println(s)
}
