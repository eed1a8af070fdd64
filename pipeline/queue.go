package pipeline

import (
	"sync"
	"time"

	"github.com/ember-profiler/ember/model"
)

// batchQueue holds drained batches for the naming stage, bounded in
// batches and in samples. When it holds its most batches, a new batch is
// folded into the newest one waiting (raw stacks, no naming), as long as
// that one stays within one drain's worth of samples and does not end an
// interval; otherwise, or past its most samples, the new batch is refused.
// One producer and one consumer.
type batchQueue struct {
	maxBatches int
	// maxSamples bounds the samples waiting, the queue's memory.
	maxSamples int
	// maxBatchSamples bounds a folded batch: what one drain can hold at most.
	maxBatchSamples int
	interval        time.Duration

	mu      sync.Mutex
	batches []*model.Batch
	samples int
	closed  bool
	ready   chan struct{} // a batch was pushed or the queue closed
	room    chan struct{} // a batch was popped
}

func newBatchQueue(maxBatches, maxSamples, maxBatchSamples int, interval time.Duration) *batchQueue {
	return &batchQueue{maxBatches: maxBatches, maxSamples: maxSamples, maxBatchSamples: maxBatchSamples,
		interval: interval, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// pushOutcome says what push did with a batch.
type pushOutcome int

const (
	pushQueued pushOutcome = iota
	pushFolded
	pushRefused // the caller still owns the batch
)

func (q *batchQueue) push(b *model.Batch) pushOutcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.samples+len(b.Samples) > q.maxSamples {
		return pushRefused
	}
	outcome := pushQueued
	if len(q.batches) < q.maxBatches {
		q.batches = append(q.batches, b)
	} else {
		newest := q.batches[len(q.batches)-1]
		// A batch that reached a boundary ends its interval: nothing is added to it.
		endsInterval := !newest.End.Before(nextBoundary(newest.Start, q.interval))
		if endsInterval || len(newest.Samples)+len(b.Samples) > q.maxBatchSamples {
			return pushRefused
		}
		newest.Absorb(b)
		outcome = pushFolded
	}
	q.samples += len(b.Samples)
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return outcome
}

// pushWait queues or folds b, waiting for the consumer to make room if
// need be. A batch larger than the queue's bound is taken once it is empty.
func (q *batchQueue) pushWait(b *model.Batch) pushOutcome {
	for {
		if outcome := q.push(b); outcome != pushRefused {
			return outcome
		}
		if q.waiting() == 0 {
			q.pushLast(b)
			return pushQueued
		}
		<-q.room
	}
}

// pushLast queues the last batch whatever the queue holds: it ends the
// interval stored at shutdown.
func (q *batchQueue) pushLast(b *model.Batch) {
	q.mu.Lock()
	q.batches = append(q.batches, b)
	q.samples += len(b.Samples)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop waits for the oldest batch; ok is false once the queue is closed and empty.
func (q *batchQueue) pop() (b *model.Batch, ok bool) {
	for {
		q.mu.Lock()
		if len(q.batches) > 0 {
			b = q.batches[0]
			q.batches[0] = nil
			q.batches = q.batches[1:]
			q.samples -= len(b.Samples)
			q.mu.Unlock()
			select {
			case q.room <- struct{}{}:
			default:
			}
			return b, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.ready
	}
}

// waiting is how many batches wait to be named.
func (q *batchQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.batches)
}

// close ends the queue; batches already in it are still popped.
func (q *batchQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
