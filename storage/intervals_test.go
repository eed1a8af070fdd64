package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Intervals read back one at a time equal what was appended, in order, and
// a reader's cursor survives a reopen.
func TestIntervalsReadBackWithCursor(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir})
	host := map[string]string{"host": "web-1"}
	ps := appendRange(t, s, smallGenerator(), t0.Add(5*time.Second), 10*time.Second, 5, host)

	refs, backlog := s.IntervalsAfter(0, 3)
	if len(refs) != 3 || backlog != 5 {
		t.Fatalf("IntervalsAfter(0, 3) = %d refs, backlog %d; want 3, 5", len(refs), backlog)
	}
	var all []IntervalRef
	for after := int64(0); ; {
		refs, _ := s.IntervalsAfter(after, 2)
		if len(refs) == 0 {
			break
		}
		all = append(all, refs...)
		after = refs[len(refs)-1].Key
	}
	if len(all) != len(ps) {
		t.Fatalf("read %d intervals back, appended %d", len(all), len(ps))
	}
	for i, ref := range all {
		got, err := s.ReadInterval(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.CheckValid(); err != nil {
			t.Fatalf("interval %d: %v", i, err)
		}
		if got.TimeNanos != ps[i].TimeNanos || got.DurationNanos != ps[i].DurationNanos {
			t.Errorf("interval %d spans %d+%d, appended %d+%d", i, got.TimeNanos, got.DurationNanos, ps[i].TimeNanos, ps[i].DurationNanos)
		}
		if c, want := canonical(got, nil), canonical(ps[i], host); c != want {
			t.Errorf("interval %d differs from what was appended:\n got %.1000s\nwant %.1000s", i, c, want)
		}
	}
	if _, err := s.ReadInterval(context.Background(), IntervalRef{Key: 1}); !errors.Is(err, ErrIntervalGone) {
		t.Errorf("ReadInterval of no interval: %v, want ErrIntervalGone", err)
	}

	if _, ok, err := s.Cursor("pyroscope"); ok || err != nil {
		t.Fatalf("new cursor: ok %v err %v", ok, err)
	}
	if err := s.SetCursor("pyroscope", all[2].Key); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, Options{Dir: dir})
	key, ok, err := s.Cursor("pyroscope")
	if err != nil || !ok || key != all[2].Key {
		t.Fatalf("cursor after reopen: %d %v %v, want %d", key, ok, err, all[2].Key)
	}
	if refs, backlog := s.IntervalsAfter(key, 10); len(refs) != 2 || backlog != 2 || refs[0] != all[3] {
		t.Errorf("after the cursor: %v (backlog %d), want %v", refs, backlog, all[3:])
	}
	if _, ok, _ := s.Cursor("otlp"); ok {
		t.Error("cursors are per reader")
	}
}
