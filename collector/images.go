package collector

import (
	"context"
	"sync"

	"github.com/ember-profiler/ember/model"
)

// A host that starts fifty programs a second, most of them gone within a
// millisecond (/bin/true, shells), asks for as many /proc reads. Read one at
// a time in arrival order, the reads of programs that live long enough to be
// sampled wait behind those of programs already gone, and arrive too late.
// So the ring is only read into imageQueue; a few readers take the newest
// image first (the likeliest to be alive), an exit cancels its pending read,
// and past the bound the oldest are dropped and counted.

// imageRead is one process image to read from /proc.
type imageRead struct {
	key       ProcessKey
	startCode uint64
	// refresh: a library appeared since the image was read (dlopen).
	refresh bool
}

// imageReaders is how many /proc reads run at once.
const imageReaders = 2

// imageQueueLimit bounds the pending reads: at 100 starts a second, ten
// seconds of backlog, by when the oldest are almost surely gone.
const imageQueueLimit = 1024

type imageQueue struct {
	mu      sync.Mutex
	pending []imageRead // arrival order
	ready   chan struct{}
	counts  model.ImageReads
}

func newImageQueue() *imageQueue {
	return &imageQueue{ready: make(chan struct{}, 1)}
}

func (q *imageQueue) push(r imageRead) {
	q.mu.Lock()
	if len(q.pending) >= imageQueueLimit {
		q.pending = append(q.pending[:0], q.pending[1:]...)
		q.counts.Dropped++
	}
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// cancel drops the pending reads of a process that exited.
func (q *imageQueue) cancel(pid uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	keep := q.pending[:0]
	for _, r := range q.pending {
		if r.key.PID == pid {
			q.counts.Cancelled++
			continue
		}
		keep = append(keep, r)
	}
	clear(q.pending[len(keep):])
	q.pending = keep
}

// take returns the newest pending read, waiting for one until ctx ends.
func (q *imageQueue) take(ctx context.Context) (imageRead, bool) {
	for {
		q.mu.Lock()
		if n := len(q.pending); n > 0 {
			r := q.pending[n-1]
			q.pending = q.pending[:n-1]
			q.counts.Read++
			more := n > 1
			q.mu.Unlock()
			if more {
				// Wake another reader for the rest.
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return r, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return imageRead{}, false
		case <-q.ready:
		}
	}
}

// total returns the counts since start.
func (q *imageQueue) total() model.ImageReads {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.counts
}

// readImages reads queued images until ctx ends, and hands each to the
// unwinder.
func (c *Collector) readImages(ctx context.Context) {
	for {
		r, ok := c.images.take(ctx)
		if !ok {
			return
		}
		start := r.startCode
		if r.refresh {
			start = 0
		}
		p := c.tracker.observe(r.key, start)
		if c.unwind != nil {
			c.unwind.enqueue(p)
		}
	}
}
