// Command burngo is bench/busyhost.sh's Go program: main.hotA (60%) and
// main.hotB (40%), burned once (a short-lived process of the churn) or every
// period forever (a long-lived one).
//
//	burngo CPU-MS [PERIOD-MS]
package main

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

var sink uint64 = 88172645463325252

// The leaves keep an array on the stack so each has a frame of its own and
// its caller shows in a frame-pointer stack.
//
//go:noinline
func hotA() { sink = spin(sink, 300000, [16]uint64{}) }

//go:noinline
func hotB() { sink = spin(sink, 200000, [16]uint64{}) }

//go:noinline
func spin(x uint64, n int, pad [16]uint64) uint64 {
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x + pad[x%16]
}

func cpuMs() float64 {
	var t unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &t)
	return float64(t.Sec)*1e3 + float64(t.Nsec)/1e6
}

func burn(ms float64) {
	end := cpuMs() + ms
	for cpuMs() < end {
		hotA()
		hotB()
	}
}

func arg(i int, def float64) float64 {
	if len(os.Args) <= i {
		return def
	}
	v, err := strconv.ParseFloat(os.Args[i], 64)
	if err != nil {
		return def
	}
	return v
}

func main() {
	ms, period := arg(1, 200), arg(2, 0)
	if period <= 0 {
		burn(ms)
		return
	}
	next := time.Now()
	for {
		burn(ms)
		next = next.Add(time.Duration(period * float64(time.Millisecond)))
		time.Sleep(time.Until(next))
	}
}
