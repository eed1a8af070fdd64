package storage

import (
	"testing"
	"time"
)

// Counters answer while a write or a query holds the store's lock.
func TestCountersDoNotWaitForTheLock(t *testing.T) {
	s := openTest(t, Options{})
	s.mu.Lock() // as Append does for a whole write
	defer s.mu.Unlock()
	done := make(chan Stats, 1)
	go func() { done <- s.Counters() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Counters waited for the store's lock")
	}
}
