package collector

import (
	"context"
	"sync"
	"time"

	"github.com/ember-profiler/ember/model"
)

// A host that starts fifty programs a second, most of them gone within a
// millisecond (/bin/true, shells), hears of each from the loader probe. At a
// load average of 100 the /proc reads cannot keep up with that: the 2026-12-06
// soak read 21 images a second of 64 started. So the ring is only read into
// imageQueue, which has two lanes. Images being sampled come first: the
// sampler tells of an image's first sample, and those reads decide whether
// its samples are named. Images the loader told of are read with what time
// is left, once they have lived a moment (loaderSettle), so that the many
// that exit at once cost nothing. Within a lane the newest goes first (the
// likeliest to be alive), an exit cancels the pending reads of its process,
// and past the bound the oldest are dropped and counted.

// imageRead is one process image to read from /proc.
type imageRead struct {
	key model.ProcessKey
	// startCode is the image's start of code, checked against the
	// mappings read; 0 when not known (a re-read after a dlopen).
	startCode uint64
	queued    time.Time
	// loaded: the loader told of it; no sample has asked for it yet.
	loaded bool
}

// imageReaders is how many /proc reads run at once. Reads mostly wait
// rather than work: reading /proc/PID/maps takes the process's mmap lock,
// which a program starting up holds while it maps its libraries, and at a
// load average of 150 it holds it for as long as it waits for a CPU. With
// two readers, both were found waiting there most of the time (the
// 2026-12-06 soak read 7 images a second); more readers keep reading the
// images that are not locked.
const imageReaders = 8

// imageQueueLimit bounds each lane: at 100 starts a second, ten seconds of
// backlog, by when the oldest are almost surely gone.
const imageQueueLimit = 1024

// loaderSettle is how long an image the loader told of waits before it is
// read, unless sampled first: programs that exit within it are never read.
const loaderSettle = 20 * time.Millisecond

type imageQueue struct {
	mu      sync.Mutex
	sampled []imageRead // arrival order
	loaded  []imageRead
	ready   chan struct{}
	counts  model.ImageReads
	now     func() time.Time
	// paused holds every read back (tests: what the sampler does alone).
	paused bool
}

func newImageQueue() *imageQueue {
	return &imageQueue{ready: make(chan struct{}, 1), now: time.Now}
}

// pushSampled queues the read of an image just sampled, ahead of every
// image the loader told of; a pending loader read of it is taken over.
func (q *imageQueue) pushSampled(r imageRead) {
	q.mu.Lock()
	q.loaded = without(q.loaded, func(o imageRead) bool { return o.key == r.key })
	q.sampled = q.pushLocked(q.sampled, r)
	q.mu.Unlock()
	q.wake()
}

// pushLoaded queues the read of an image whose libraries are loaded.
func (q *imageQueue) pushLoaded(r imageRead) {
	r.loaded = true
	q.mu.Lock()
	q.loaded = q.pushLocked(q.loaded, r)
	q.mu.Unlock()
	q.wake()
}

func (q *imageQueue) pushLocked(lane []imageRead, r imageRead) []imageRead {
	if len(lane) >= imageQueueLimit {
		lane = append(lane[:0], lane[1:]...)
		q.counts.Dropped++
	}
	r.queued = q.now()
	return append(lane, r)
}

func (q *imageQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// cancel drops the pending reads of a process that exited.
func (q *imageQueue) cancel(pid uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	gone := func(r imageRead) bool { return r.key.PID == pid }
	before := len(q.sampled) + len(q.loaded)
	q.sampled = without(q.sampled, gone)
	q.loaded = without(q.loaded, gone)
	q.counts.Cancelled += uint64(before - len(q.sampled) - len(q.loaded))
}

func without(lane []imageRead, drop func(imageRead) bool) []imageRead {
	keep := lane[:0]
	for _, r := range lane {
		if !drop(r) {
			keep = append(keep, r)
		}
	}
	clear(lane[len(keep):])
	return keep
}

// take returns the next read, waiting for one until ctx ends: the newest
// sampled image, else the newest loader-told image that has settled.
func (q *imageQueue) take(ctx context.Context) (imageRead, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		r, ok, wait := q.next()
		if ok {
			return r, true
		}
		var settled <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			settled = timer.C
		}
		select {
		case <-ctx.Done():
			return imageRead{}, false
		case <-q.ready:
		case <-settled:
		}
	}
}

// next takes a read that may go now, or says how long until one may.
func (q *imageQueue) next() (imageRead, bool, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.paused {
		return imageRead{}, false, 10 * time.Millisecond
	}
	if n := len(q.sampled); n > 0 {
		r := q.sampled[n-1]
		q.sampled = q.sampled[:n-1]
		q.tookLocked()
		return r, true, 0
	}
	now := q.now()
	for i := len(q.loaded) - 1; i >= 0; i-- {
		if age := now.Sub(q.loaded[i].queued); age >= loaderSettle {
			r := q.loaded[i]
			q.loaded = append(q.loaded[:i], q.loaded[i+1:]...)
			q.tookLocked()
			return r, true, 0
		}
	}
	if len(q.loaded) > 0 {
		// The newest settles last; the oldest of those waiting settles first.
		return imageRead{}, false, loaderSettle - now.Sub(q.loaded[0].queued)
	}
	return imageRead{}, false, 0
}

func (q *imageQueue) tookLocked() {
	q.counts.Read++
	if len(q.sampled)+len(q.loaded) > 0 {
		q.wake() // another reader for the rest
	}
}

// pause holds reads back, or lets them go again.
func (q *imageQueue) pause(on bool) {
	q.mu.Lock()
	q.paused = on
	q.mu.Unlock()
	q.wake()
}

// skip counts a read left out.
func (q *imageQueue) skip() {
	q.mu.Lock()
	q.counts.Skipped++
	q.mu.Unlock()
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
		if r.loaded && c.plain.covers(c.unwind, r.key) {
			c.images.skip()
			continue
		}
		p := c.tracker.observe(r.key, r.startCode)
		if c.unwind != nil && !c.unwind.keptSamplerInstall(p, c.tracker.alive) {
			c.unwind.enqueue(p)
		}
		mine := false
		for _, in := range c.interpreters {
			mine = in.attach(p) || mine
		}
		if !mine {
			c.plain.learn(p)
		}
	}
}
