package web

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/storage"
)

// TestSeriesPointLimitAgreesWithStore asks the real store for more points
// than it answers: the web layer allowed 11,000 points and the store
// 10,000, so 3 h at 1 s was a 500. It is a 400 naming step and the
// smallest step allowed.
func TestSeriesPointLimitAgreesWithStore(t *testing.T) {
	st, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := newTestServer(t, func(o *Options) { o.Store = FromStorage(st) })
	body := wantError(t, ts.get("/api/v1/series?from=-3h&step=1s"), 400, "step")
	if !strings.Contains(body.Error, "at least 2s") {
		t.Errorf("error %q does not name the smallest step, 2s", body.Error)
	}
	decode[SeriesResponse](t, ts.get("/api/v1/series?from=-3h&step=2s"))
	decode[SeriesResponse](t, ts.get("/api/v1/series?from=-10000s&step=1s"))
	wantError(t, ts.get("/api/v1/series?from=-10001s&step=1s"), 400, "step")
	// An empty range has no labels: grouped, its series are empty, not a 400.
	if resp := decode[SeriesResponse](t, ts.get("/api/v1/series?from=-1h&group_by=comm")); len(resp.Series) != 0 {
		t.Errorf("an empty range's series: %+v", resp.Series)
	}

	if _, err := New(Options{Store: newFakeStore(), Limits: Limits{MaxPoints: storage.MaxSeriesPoints + 1}}); err == nil || !strings.Contains(err.Error(), "MaxPoints") {
		t.Errorf("more points than the store answers: %v", err)
	}
}

// TestSeriesResponseBounded checks that the store is asked for no more
// series than the response's point budget holds, and that the groups left
// out come back summed in "other".
func TestSeriesResponseBounded(t *testing.T) {
	ts := newTestServer(t, nil)
	at := func(m int) time.Time { return testNow.Add(time.Duration(m-60) * time.Minute) }
	ts.store.series = []Series{
		{Labels: map[string]string{"pid": "1"}, Points: []Point{{at(0), 1}, {at(1), 1}}},
		{Labels: map[string]string{"pid": "2"}, Points: []Point{{at(0), 0.5}, {at(1), 0.5}}},
		{Labels: map[string]string{"pid": "3"}, Points: []Point{{at(0), 0.25}}},
		{Labels: map[string]string{}, Points: []Point{{at(0), 0.1}, {at(1), 0.2}}, Folded: 40},
	}
	resp := decode[SeriesResponse](t, ts.get("/api/v1/series?from=-24h&step=10s&group_by=pid&limit=2"))
	if c := ts.store.seriesCalls[0]; c.limit != 2 {
		t.Errorf("store asked for %d series, want 2", c.limit)
	}
	if len(resp.Series) != 2 || resp.Truncated != 41 || resp.Other == nil {
		t.Fatalf("%d series, %d truncated, other %v; want 2, 41 (40 folded by the store, one more here) and other",
			len(resp.Series), resp.Truncated, resp.Other)
	}
	if want := [][2]float64{{float64(at(0).Unix()), 0.35}, {float64(at(1).Unix()), 0.2}}; len(resp.Other.Points) != 2 ||
		resp.Other.Points[0] != want[0] || resp.Other.Points[1] != want[1] {
		t.Errorf("other = %v, want %v", resp.Other.Points, want)
	}
	// A day at 10 s is 8,640 points: the budget leaves room for fewer series
	// than the default limit of 1,000.
	decode[SeriesResponse](t, ts.get("/api/v1/series?from=-24h&step=10s&group_by=pid"))
	if c, want := ts.store.seriesCalls[1], storage.SeriesLimit(8640); c.limit != want || want*8640 > storage.MaxSeriesValues {
		t.Errorf("store asked for %d series of 8,640 points, want %d", c.limit, want)
	}
}

// TestSeriesGroupedByRealLabels asks the real store for series grouped by
// a label its samples carry, by one none carries (a 400 naming it) and by
// one they carry but the selector leaves out (no error).
func TestSeriesGroupedByRealLabels(t *testing.T) {
	// Retention long enough for testNow's data to stay whatever the clock.
	st, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1, Retention: 100 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := profiletest.Read(t, "../storage/testdata/record-1.pb.gz")
	p.TimeNanos, p.DurationNanos = testNow.Add(-5*time.Minute).UnixNano(), int64(10*time.Second)
	if err := st.Append(context.Background(), p, map[string]string{"host": "h"}); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.Store = FromStorage(st) })
	resp := decode[SeriesResponse](t, ts.get("/api/v1/series?from=-1h&step=10s&group_by=comm"))
	if len(resp.Series) == 0 || resp.Series[0].Labels["comm"] == "" {
		t.Fatalf("series by comm: %+v", resp.Series)
	}
	wantError(t, ts.get("/api/v1/series?from=-1h&step=10s&group_by=colour"), 400, "group_by")
	decode[SeriesResponse](t, ts.get("/api/v1/series?from=-1h&step=10s&group_by=comm&query="+url.QueryEscape(`{comm="no-such"}`)))
}
