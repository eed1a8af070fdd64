package collector

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// A pipe stands in for the event ring: both wake epoll when written to.
func TestRingWaiterWakesTimesOutAndCloses(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	waiter, err := newRingWaiter(int(r.Fd()))
	if err != nil {
		t.Fatalf("a pipe should be pollable: %v", err)
	}
	var ready atomic.Bool
	isReady := func() bool { return ready.Load() }

	// Nothing written: the wait ends at its deadline, without an error.
	if err := waiter.wait(time.Now().Add(20*time.Millisecond), isReady); err != nil {
		t.Fatalf("wait to the deadline: %v", err)
	}

	// Written: the wait ends long before its deadline.
	go func() {
		time.Sleep(20 * time.Millisecond)
		ready.Store(true)
		w.Write([]byte{1})
	}()
	start := time.Now()
	if err := waiter.wait(time.Now().Add(time.Minute), isReady); err != nil {
		t.Fatalf("wait for data: %v", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("woken after %v, not by the write", took)
	}

	// Closed while waiting: os.ErrClosed, which ends the reader.
	ready.Store(false)
	go func() {
		time.Sleep(20 * time.Millisecond)
		waiter.close()
	}()
	if err := waiter.wait(time.Now().Add(time.Minute), isReady); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("wait on a closed waiter: got %v, want os.ErrClosed", err)
	}
}
