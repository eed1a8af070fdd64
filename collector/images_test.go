package collector

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ember-profiler/ember/model"
)

// fakeClock is the queue's time, moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func queueAt(clock *fakeClock) *imageQueue {
	q := newImageQueue()
	q.now = clock.now
	return q
}

func read(pid uint32) imageRead { return imageRead{key: model.ProcessKey{PID: pid}} }

// takeNow takes every read that may go now.
func takeNow(q *imageQueue) []uint32 {
	var pids []uint32
	for {
		r, ok, _ := q.next()
		if !ok {
			return pids
		}
		pids = append(pids, r.key.PID)
	}
}

func TestImageQueueSampledFirstNewestFirst(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	q := queueAt(clock)
	q.pushLoaded(read(1))
	q.pushLoaded(read(2))
	q.pushSampled(read(3))
	q.pushSampled(read(4))
	q.pushLoaded(read(5))
	q.pushSampled(read(2)) // sampled while its loader read waits: read once, as sampled
	if got, want := takeNow(q), []uint32{2, 4, 3}; !slices.Equal(got, want) {
		t.Fatalf("before the loader reads settle: read %v, want the sampled ones newest first %v", got, want)
	}
	clock.t = clock.t.Add(loaderSettle)
	if got, want := takeNow(q), []uint32{5, 1}; !slices.Equal(got, want) {
		t.Errorf("once settled: read %v, want %v", got, want)
	}
	if c := q.total(); c != (model.ImageReads{Read: 5}) {
		t.Errorf("counts %+v", c)
	}
}

func TestImageQueueExitCancels(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	q := queueAt(clock)
	q.pushLoaded(read(1)) // /bin/true: gone within the settle time
	q.pushLoaded(read(2))
	q.pushSampled(read(3))
	q.cancel(1)
	q.cancel(3)
	clock.t = clock.t.Add(loaderSettle)
	if got, want := takeNow(q), []uint32{2}; !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
	if c := q.total(); c != (model.ImageReads{Read: 1, Cancelled: 2}) {
		t.Errorf("counts %+v", c)
	}
}

func TestImageQueueDropsOldestAtBound(t *testing.T) {
	q := newImageQueue()
	for pid := uint32(1); pid <= imageQueueLimit+10; pid++ {
		q.pushSampled(read(pid))
	}
	if c := q.total(); c.Dropped != 10 {
		t.Fatalf("dropped %d, want 10", c.Dropped)
	}
	if oldest := q.sampled[0].key.PID; oldest != 11 {
		t.Errorf("oldest kept is %d, want 11: the oldest must go first", oldest)
	}
}

// A reader waiting with nothing to do wakes for a sampled image at once, and
// for a loader-told one when it has settled.
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
	expect := func(pid uint32, what string) {
		t.Helper()
		select {
		case p := <-got:
			if p != pid {
				t.Fatalf("got pid %d, want %d", p, pid)
			}
		case <-time.After(10 * time.Second):
			t.Fatal(what)
		}
	}
	q.pushSampled(read(7))
	expect(7, "a waiting reader was not woken by a sampled image")
	q.pushLoaded(read(8))
	expect(8, "a waiting reader did not take a loader-told image once it settled")
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
