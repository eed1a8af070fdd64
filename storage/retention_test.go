package storage

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestRetention runs the maintenance goroutine on an injected clock: data
// that starts before now - Retention disappears, at every resolution, and
// the rest stays whole.
func TestRetention(t *testing.T) {
	var clock atomic.Int64 // appends happen at t0, then the clock jumps
	clock.Store(t0.UnixNano())
	now := t0.Add(3*time.Hour + 30*time.Minute)
	rounds := make(chan struct{}, 100)
	s := openTest(t, Options{
		Retention:        2 * time.Hour,
		now:              func() time.Time { return time.Unix(0, clock.Load()) },
		maintenanceEvery: 20 * time.Millisecond,
		afterMaintenance: func() {
			select {
			case rounds <- struct{}{}:
			default:
			}
		},
	})
	g := smallGenerator()
	ps := appendRange(t, s, g, t0, 5*time.Minute, 42, nil) // 10:00 to 13:30
	clock.Store(now.UnixNano())
	for len(rounds) > 0 {
		<-rounds
	}
	<-rounds
	<-rounds // a whole round after the appends
	cutoff := now.Add(-2 * time.Hour)
	ctx := context.Background()
	old, err := s.Query(ctx, ProfileQuery{From: t0, To: cutoff})
	if err != nil {
		t.Fatal(err)
	}
	if len(old.Sample) != 0 {
		t.Errorf("%d samples before the retention cutoff remain", len(old.Sample))
	}
	var kept []*profile.Profile
	for _, p := range ps {
		if p.TimeNanos >= cutoff.UnixNano() {
			kept = append(kept, p)
		}
	}
	for _, raw := range []bool{false, true} {
		s.mu.Lock()
		s.opts.noRollups = raw
		s.mu.Unlock()
		got, err := s.Query(ctx, ProfileQuery{From: t0, To: now})
		if err != nil {
			t.Fatal(err)
		}
		if canonical(got, nil) != mergeCanonical(t, kept, nil) {
			t.Errorf("raw only %v: data inside the retention is not the merge of its intervals", raw)
		}
	}
	if st := s.Stats(); st.OldestData.Before(cutoff) {
		t.Errorf("oldest data %s, before the cutoff %s", st.OldestData, cutoff)
	}
	for level := range numLevels {
		if refs := s.index[level]; len(refs) > 0 && refs[0].startNanos < cutoff.UnixNano() {
			t.Errorf("level %d still has a block at %s", level, time.Unix(0, refs[0].startNanos).UTC())
		}
	}
}

// TestMaxDisk: past MaxDiskBytes the oldest hours go, the newest stay.
func TestMaxDisk(t *testing.T) {
	s := openTest(t, Options{maintenanceEvery: time.Hour})
	g := smallGenerator()
	ps := appendRange(t, s, g, t0, 5*time.Minute, 48, nil) // 4 hours
	encoded := func() int64 {
		s.mu.RLock()
		defer s.mu.RUnlock()
		var n int64
		for level := range numLevels {
			for _, ref := range s.index[level] {
				n += ref.bytes
			}
		}
		return n
	}
	before := encoded()
	s.opts.diskBytes = func(string) (int64, error) { return encoded(), nil }
	s.opts.MaxDiskBytes = before * 6 / 10
	s.maintainOnce()
	after := encoded()
	if after > s.opts.MaxDiskBytes*9/10 || after == 0 {
		t.Errorf("after the disk limit: %d bytes of %d, limit %d", after, before, s.opts.MaxDiskBytes)
	}
	st := s.Stats()
	if !st.OldestData.After(t0) || !st.NewestData.Equal(t0.Add(235*time.Minute)) {
		t.Errorf("extent after the disk limit %s to %s: want the oldest gone, the newest kept", st.OldestData, st.NewestData)
	}
	got, err := s.Query(context.Background(), ProfileQuery{From: st.OldestData, To: t0.Add(4 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var kept []*profile.Profile
	for _, p := range ps {
		if p.TimeNanos >= st.OldestData.UnixNano() {
			kept = append(kept, p)
		}
	}
	if canonical(got, nil) != mergeCanonical(t, kept, nil) {
		t.Error("remaining data is not the merge of the remaining intervals")
	}
	t.Logf("kept %s to %s: %d of %d encoded bytes", st.OldestData.UTC(), st.NewestData.UTC(), after, before)
}
