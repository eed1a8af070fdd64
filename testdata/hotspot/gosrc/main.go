// Command hotspot-go burns CPU in three leaf functions with a known split of
// time: main.alpha 50%, main.beta 30%, main.gamma 20%, on one OS thread.
// Ember's sampler tests profile it and check each leaf's share of its samples
// and the call chain from main.main to the leaf.
//
// Chains: main.main -> main.run -> main.alpha
//
//	main.main -> main.run -> main.workB -> main.beta
//	main.main -> main.run -> main.gamma
//
// Usage: hotspot-go [seconds]   (default 10)
//
// Build (see ../build.sh):
//
//	go build -buildvcs=false -trimpath -o testdata/hotspot/hotspot-go ./testdata/hotspot/gosrc
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// checkEvery is how many rounds of arithmetic run between clock reads
// (about a millisecond), so time spent outside the leaf's own code is
// negligible.
const checkEvery = 1_000_000

// sink keeps the arithmetic observable so the compiler cannot drop it.
var sink uint64

// Each leaf keeps a [16]uint64 on its stack. Go gives a function with a
// zero-size frame no frame-pointer prologue, and then its caller is missing
// from frame-pointer stacks; the array guarantees a real frame.

//go:noinline
func alpha(deadline time.Duration) {
	var state [16]uint64
	state[0] = sink ^ 0x9e3779b97f4a7c15
	for {
		for i := 0; i < checkEvery; i++ {
			x := state[i&15]
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			state[(i+1)&15] = x
		}
		if threadCPU() >= deadline {
			break
		}
	}
	sink = state[checkEvery&15]
}

//go:noinline
func beta(deadline time.Duration) {
	var state [16]uint64
	state[0] = sink ^ 0xbf58476d1ce4e5b9
	for {
		for i := 0; i < checkEvery; i++ {
			x := state[i&15]
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			state[(i+1)&15] = x
		}
		if threadCPU() >= deadline {
			break
		}
	}
	sink = state[checkEvery&15]
}

//go:noinline
func gamma(deadline time.Duration) {
	var state [16]uint64
	state[0] = sink ^ 0x94d049bb133111eb
	for {
		for i := 0; i < checkEvery; i++ {
			x := state[i&15]
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			state[(i+1)&15] = x
		}
		if threadCPU() >= deadline {
			break
		}
	}
	sink = state[checkEvery&15]
}

// workB adds a level so one chain is deeper than main -> run -> leaf.
//
//go:noinline
func workB(deadline time.Duration) {
	beta(deadline)
	sink++
}

// threadCPU is the CPU time of this (locked) thread. The leaves split CPU
// time, not wall-clock time: on a loaded machine the program waits long
// between its turns on a CPU, and with wall-clock slices each turn would
// find the last slice over and start a new cycle in alpha.
// A raw system call: clock_gettime never blocks, and the runtime's
// entersyscall/exitsyscall would put samples on the g0 stack, whose walk
// stops at runtime.systemstack (issue 20), in a fixture about user code.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_, _, errno := unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_THREAD_CPUTIME_ID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(errno)
	}
	return time.Duration(ts.Nano())
}

//go:noinline
func run(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t := threadCPU()
		alpha(t + 50*time.Millisecond)
		workB(t + 80*time.Millisecond)
		gamma(t + 100*time.Millisecond)
	}
}

func main() {
	// One thread does all the work, so the profile's split is the program's.
	runtime.LockOSThread()
	runtime.GOMAXPROCS(1)

	seconds := 10.0
	if len(os.Args) > 1 {
		n, err := strconv.ParseFloat(os.Args[1], 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [seconds]\n", os.Args[0])
			os.Exit(2)
		}
		seconds = n
	}
	run(time.Duration(seconds * float64(time.Second)))
	fmt.Println(sink)
}
