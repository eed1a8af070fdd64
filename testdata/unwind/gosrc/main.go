// Command go-frameless burns CPU in a frameless leaf, main.spin, called from
// main.goAlpha, main.goBeta and main.goGamma for 50%, 30% and 20% of its
// thread's CPU time. spin pushes no frame pointer, so a frame-pointer walk
// from it skips its caller; an unwinder that reads .gopclntab's SP deltas
// does not. Given a file name, it writes its own runtime/pprof CPU profile
// of the run there at exit, to compare with.
//
// Usage: go-frameless cpu-seconds [profile.pb.gz]
//
// Build (see ../build.sh): go build -buildvcs=false -trimpath -o go-frameless ./gosrc
// and with -ldflags=-s for go-frameless-stripped.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var sink uint64

// spin has no locals and calls nothing: Go gives it no frame.
//
//go:noinline
func spin(n int) uint64 {
	x := sink | 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// burn calls spin until the thread has used deadline of CPU time; each
// caller is its own function so that it has its own name.
//
//go:noinline
func goAlpha(deadline time.Duration) {
	for threadCPU() < deadline {
		sink += spin(1 << 18)
	}
}

//go:noinline
func goBeta(deadline time.Duration) {
	for threadCPU() < deadline {
		sink += spin(1 << 18)
	}
}

//go:noinline
func goGamma(deadline time.Duration) {
	for threadCPU() < deadline {
		sink += spin(1 << 18)
	}
}

// threadCPU is this locked thread's CPU time, by a raw system call so that
// no sample lands in the runtime's system-call bookkeeping.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_, _, errno := unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_THREAD_CPUTIME_ID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(errno)
	}
	return time.Duration(ts.Nano())
}

//go:noinline
func run(cpu time.Duration) {
	for threadCPU() < cpu {
		t := threadCPU()
		goAlpha(t + 50*time.Millisecond)
		goBeta(t + 80*time.Millisecond)
		goGamma(t + 100*time.Millisecond)
	}
}

func main() {
	runtime.LockOSThread()
	runtime.GOMAXPROCS(1)
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s cpu-seconds [profile.pb.gz]\n", os.Args[0])
		os.Exit(2)
	}
	seconds, err := strconv.ParseFloat(os.Args[1], 64)
	if err != nil || seconds <= 0 {
		fmt.Fprintf(os.Stderr, "bad cpu-seconds %q\n", os.Args[1])
		os.Exit(2)
	}
	if len(os.Args) > 2 {
		f, err := os.Create(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// 500 Hz, near the sampler's test rate; the runtime warns once.
		runtime.SetCPUProfileRate(500)
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	run(threadCPU() + time.Duration(seconds*float64(time.Second)))
	fmt.Println(sink)
}
