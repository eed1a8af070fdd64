package collector

import (
	"context"
	"testing"
	"time"

	"github.com/ember-profiler/ember/model"
)

func TestImageQueueNewestFirstExitCancels(t *testing.T) {
	q := newImageQueue()
	for pid := uint32(1); pid <= 4; pid++ {
		q.push(imageRead{key: ProcessKey{PID: pid}})
	}
	q.cancel(3) // exited before its turn: never read
	ctx := context.Background()
	var got []uint32
	for range 3 {
		r, ok := q.take(ctx)
		if !ok {
			t.Fatal("take returned nothing with reads pending")
		}
		got = append(got, r.key.PID)
	}
	if want := []uint32{4, 2, 1}; !equalPIDs(got, want) {
		t.Errorf("read order %v, want the newest first %v", got, want)
	}
	if c := q.total(); c != (model.ImageReads{Read: 3, Cancelled: 1}) {
		t.Errorf("counts %+v", c)
	}
}

func TestImageQueueDropsOldestAtBound(t *testing.T) {
	q := newImageQueue()
	for pid := uint32(1); pid <= imageQueueLimit+10; pid++ {
		q.push(imageRead{key: ProcessKey{PID: pid}})
	}
	if c := q.total(); c.Dropped != 10 {
		t.Fatalf("dropped %d, want 10", c.Dropped)
	}
	q.mu.Lock()
	oldest := q.pending[0].key.PID
	q.mu.Unlock()
	if oldest != 11 {
		t.Errorf("oldest kept is %d, want 11: the oldest must go first", oldest)
	}
}

func TestImageQueueTakeWaitsAndStops(t *testing.T) {
	q := newImageQueue()
	got := make(chan uint32)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			r, ok := q.take(ctx)
			if !ok {
				close(got)
				return
			}
			got <- r.key.PID
		}
	}()
	q.push(imageRead{key: ProcessKey{PID: 7}})
	select {
	case pid := <-got:
		if pid != 7 {
			t.Fatalf("got pid %d", pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting reader was not woken by a push")
	}
	cancel()
	select {
	case _, open := <-got:
		if open {
			t.Fatal("read after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("take did not return when its context ended")
	}
}

func equalPIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
