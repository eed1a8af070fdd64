package web

import (
	"cmp"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ember-profiler/ember/storage/query"
)

// partialStacks answers flame graphs from stacks that cover only the last
// minute of the range, as a store past its read deadline does.
type partialStacks struct {
	*fakeStore
	calls  *int
	reason string // "time" when empty
}

func (s partialStacks) FlameStacks(_ context.Context, _, to, readBy time.Time, _, _ string) (*query.Stacks, error) {
	*s.calls++
	if readBy.IsZero() {
		return nil, errors.New("no read deadline")
	}
	return &query.Stacks{
		SampleTypes: []query.ValueType{{Type: "samples", Unit: "count"}},
		Frames:      []query.Frame{{Name: "main"}, {Name: "work"}},
		Paths:       []int32{0, 1}, Lines: []int32{0, 0},
		Samples:     []query.StackSample{{Start: 0, End: 2, Group: -1}},
		Values:      []int64{7},
		CoveredFrom: to.Add(-time.Minute),
		StoppedBy:   cmp.Or(s.reason, "time"),
	}, nil
}

// TestFlameGraphPartial: a flame graph the store read only in part says
// what it covers, and is not cached, so that the next request reads again.
func TestFlameGraphPartial(t *testing.T) {
	calls := 0
	ts := newTestServer(t, func(o *Options) { o.Store = partialStacks{newFakeStore(), &calls, ""} })
	from, to := testNow.Add(-3*time.Hour).UTC(), testNow.Add(-2*time.Hour).UTC() // long past: cacheable
	target := "/api/v1/flamegraph?from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	for i := range 2 {
		fg := decode[FlameGraph](t, ts.get(target))
		if !fg.Partial || !fg.CoveredFrom.Equal(to.Add(-time.Minute)) || fg.Total != 7 || fg.PartialReason != "time" {
			t.Fatalf("partial %v, covered from %s (%q), total %d: want partial from %s (\"time\"), 7", fg.Partial, fg.CoveredFrom, fg.PartialReason, fg.Total, to.Add(-time.Minute))
		}
		if calls != i+1 {
			t.Errorf("request %d: the store was asked %d times: a partial answer was cached", i+1, calls)
		}
	}
}

// TestFlameGraphPartialByStacksCached: a flame graph cut at the store's
// bound on stacks says so, and over a past range is cached: the bound stops
// at the same place for the same blocks.
func TestFlameGraphPartialByStacksCached(t *testing.T) {
	calls := 0
	ts := newTestServer(t, func(o *Options) { o.Store = partialStacks{newFakeStore(), &calls, "stacks"} })
	from, to := testNow.Add(-3*time.Hour).UTC(), testNow.Add(-2*time.Hour).UTC()
	target := "/api/v1/flamegraph?from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	for range 2 {
		fg := decode[FlameGraph](t, ts.get(target))
		if !fg.Partial || fg.PartialReason != "stacks" || !fg.CoveredFrom.Equal(to.Add(-time.Minute)) {
			t.Fatalf("partial %v (%q) from %s: want partial (\"stacks\") from %s", fg.Partial, fg.PartialReason, fg.CoveredFrom, to.Add(-time.Minute))
		}
	}
	if calls != 1 {
		t.Errorf("the store was asked %d times: want once, then the cache", calls)
	}
}
