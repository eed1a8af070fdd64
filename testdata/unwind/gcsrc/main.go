// Command go-gc spends much of its time on the thread's own stack (g0),
// where Go's runtime switches for its own work: large allocations
// (runtime.systemstack in mallocgc), the collector marking a live heap of
// pointers (gcBgMarkWorker, mark assists) and goroutine stacks that grow
// (runtime.morestack, newstack, copystack). Every such sample's stack goes
// on from the switch on the goroutine's stack, to runtime.goexit.
//
// Usage: go-gc [seconds]   (default 10)
//
// Build (see ../build.sh): go build -buildvcs=false -trimpath -o go-gc ./gcsrc
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

type node struct {
	next *node
	pad  [3]*int
}

var (
	live []*node
	sink []byte
	stop atomic.Bool
)

//go:noinline
func allocLarge(n int) []byte { return make([]byte, n) }

// deep recurses with a frame big enough that a new goroutine's stack grows
// many times on the way down.
//
//go:noinline
func deep(n int) int {
	var buf [2048]byte
	buf[n%2048] = byte(n)
	if n == 0 {
		return int(buf[0])
	}
	return deep(n-1) + int(buf[n%2048])
}

func grow() {
	for !stop.Load() {
		done := make(chan int)
		go func() { done <- deep(200) }()
		<-done
	}
}

func main() {
	seconds := 10.0
	if len(os.Args) > 1 {
		if n, err := strconv.ParseFloat(os.Args[1], 64); err == nil && n > 0 {
			seconds = n
		}
	}
	// A live heap of pointers for every collection to mark.
	var prev *node
	for i := 0; i < 1<<20; i++ {
		prev = &node{next: prev}
		live = append(live, prev)
	}
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	go grow()
	for time.Now().Before(end) {
		sink = allocLarge(1 << 20)
	}
	stop.Store(true)
	fmt.Println(len(live), len(sink))
}
