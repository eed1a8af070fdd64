package pipeline

import (
	"testing"
	"time"

	"github.com/ember-profiler/ember/model"
)

// A full queue folds a batch into the newest waiting one only within one
// drain's worth of samples and never past an interval boundary, and holds
// no more samples than its bound.
func TestBatchQueueFoldsWithinBounds(t *testing.T) {
	t0 := time.Unix(1000, 0) // on a 10 s boundary
	batch := func(from, to time.Duration, samples int) *model.Batch {
		return &model.Batch{Start: t0.Add(from), End: t0.Add(to), Samples: make([]model.Sample, samples)}
	}
	q := newBatchQueue(1, 100, 5, 10*time.Second)
	if got := q.push(batch(0, time.Second, 2)); got != pushQueued {
		t.Fatalf("first push: %v", got)
	}
	if got := q.push(batch(time.Second, 2*time.Second, 3)); got != pushFolded {
		t.Fatalf("push within bounds: %v, want folded", got)
	}
	if got := q.push(batch(2*time.Second, 3*time.Second, 1)); got != pushRefused {
		t.Errorf("push past one drain's samples: %v, want refused", got)
	}
	q2 := newBatchQueue(1, 100, 100, 10*time.Second)
	q2.push(batch(9*time.Second, 10*time.Second, 1)) // ends its interval
	if got := q2.push(batch(10*time.Second, 11*time.Second, 1)); got != pushRefused {
		t.Errorf("push after a batch that ended its interval: %v, want refused", got)
	}
	q2.pushLast(batch(11*time.Second, 12*time.Second, 1))
	q2.close()
	var ends []time.Time
	for b, ok := q2.pop(); ok; b, ok = q2.pop() {
		ends = append(ends, b.End)
	}
	if len(ends) != 2 || !ends[0].Before(ends[1]) {
		t.Errorf("popped batches ending %v, want the queued one then the last", ends)
	}
	b, _ := q.pop()
	if len(b.Samples) != 5 || !b.End.Equal(t0.Add(2*time.Second)) {
		t.Errorf("folded batch: %d samples ending %v", len(b.Samples), b.End)
	}

	q3 := newBatchQueue(10, 4, 4, 10*time.Second)
	q3.push(batch(0, time.Second, 3))
	if got := q3.push(batch(time.Second, 2*time.Second, 2)); got != pushRefused {
		t.Errorf("push past the queue's samples: %v, want refused", got)
	}
	q3.pop()
	if got := q3.push(batch(time.Second, 2*time.Second, 2)); got != pushQueued {
		t.Errorf("push after the queue emptied: %v, want queued", got)
	}
}
