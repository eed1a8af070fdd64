package web

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
)

func TestProfileEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	rec := ts.get("/api/v1/profile?from=-2h&to=-1h&query=" + url.QueryEscape(`{comm="app"}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="ember-20261125T100000Z-20261125T110000Z.pb.gz"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", rec.Header())
	}
	if !bytes.HasPrefix(rec.Body.Bytes(), []byte{0x1f, 0x8b}) {
		t.Errorf("body is not gzipped")
	}
	p, err := profile.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != 4 || p.SampleType[1].Type != "cpu" {
		t.Errorf("parsed %d samples, types %v", len(p.Sample), p.SampleType)
	}
	calls := ts.store.calls()
	want := profileCall{testNow.Add(-2 * time.Hour), testNow.Add(-time.Hour), `{comm="app"}`}
	if len(calls) != 1 || calls[0] != want {
		t.Errorf("store asked %+v, want %+v", calls, want)
	}

	// A range without samples is an empty, valid profile.
	rec = ts.get("/api/v1/profile?query=" + url.QueryEscape(`{comm="none"}`))
	if p, err := profile.Parse(rec.Body); rec.Code != 200 || err != nil || len(p.Sample) != 0 {
		t.Errorf("empty range: status %d, err %v", rec.Code, err)
	}
}

// TestBadRequests covers every bad input of every endpoint: each is a 4xx
// with JSON naming the parameter.
func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	bad := url.QueryEscape(`comm="x"`)
	for _, tc := range []struct {
		target string
		status int
		param  string
	}{
		{"/api/v1/profile?from=yesterday", 400, "from"},
		{"/api/v1/profile?to=later", 400, "to"},
		{"/api/v1/profile?from=-1h&to=-2h", 400, "to"},
		{"/api/v1/profile?from=-32d", 400, "from"},
		{"/api/v1/profile?query=" + bad, 400, "query"},
		{"/debug/pprof/profile?seconds=abc", 400, "seconds"},
		{"/debug/pprof/profile?seconds=0", 400, "seconds"},
		{"/debug/pprof/profile?seconds=301", 400, "seconds"},
		{"/debug/pprof/profile?seconds=1&query=" + bad, 400, "query"},
		{"/api/v1/flamegraph?max_nodes=many", 400, "max_nodes"},
		{"/api/v1/flamegraph?max_nodes=1", 400, "max_nodes"},
		{"/api/v1/flamegraph?max_nodes=131073", 400, "max_nodes"}, // Limits.MaxNodes + 1
		{"/api/v1/flamegraph?sample_type=alloc_space", 400, "sample_type"},
		{"/api/v1/flamegraph?group_by=no-such", 400, "group_by"},
		{"/api/v1/flamegraph?max_other=2", 400, "max_other"},
		{"/api/v1/flamegraph?max_other=NaN", 400, "max_other"},
		{"/api/v1/flamegraph?query=" + bad, 400, "query"},
		{"/api/v1/flamegraph?from=-1h&to=-1h", 400, "to"},
		{"/api/v1/diff?query=" + bad, 400, "query"},
		{"/api/v1/diff?base_query=" + bad, 400, "base_query"},
		{"/api/v1/diff?base_from=-1h&base_to=-3h", 400, "base_to"},
		{"/api/v1/diff?base_from=soon", 400, "base_from"},
		{"/api/v1/diff?base_to=soon", 400, "base_to"},
		{"/api/v1/diff?base_from=-40d&base_to=now", 400, "base_from"},
		{"/api/v1/diff?order_by=name", 400, "order_by"},
		{"/api/v1/diff?limit=0", 400, "limit"},
		{"/api/v1/series?step=0.5s", 400, "step"},
		{"/api/v1/series?step=fast", 400, "step"},
		{"/api/v1/series?from=-31d&step=1m", 400, "step"}, // 44,640 points
		{"/api/v1/series?group_by=1comm", 400, "group_by"},
		{"/api/v1/series?limit=-1", 400, "limit"},
		{"/api/v1/series?query=" + bad, 400, "query"},
		{"/api/v1/labels?from=-1h&to=-2h", 400, "to"},
		{"/api/v1/labels/comm/values?from=bad", 400, "from"},
		{"/api/v1/labels/no-such/values", 400, "name"},
		{"/api/v1/labels/never_seen/values", 404, "name"},
		{"/api/v1/nothing", 404, ""},
		{"/api/v1/profile?query=%zz", 400, ""},
		{"/api/v1/profile?query=" + strings.Repeat("x", 9000), 414, ""},
	} {
		t.Run(tc.target[:min(len(tc.target), 60)], func(t *testing.T) {
			body := wantError(t, ts.get(tc.target), tc.status, tc.param)
			if tc.param != "" && !strings.Contains(body.Error, tc.param) {
				t.Errorf("error %q does not name %q", body.Error, tc.param)
			}
		})
	}

	// Methods other than GET, and bodies.
	wantError(t, ts.do(httptest.NewRequest(http.MethodPost, "/api/v1/profile", nil)), 405, "")
	wantError(t, ts.do(httptest.NewRequest(http.MethodGet, "/api/v1/profile", strings.NewReader("x"))), 413, "")
}

func TestLiveProfile(t *testing.T) {
	ts := newTestServer(t, nil)
	rec := ts.get("/debug/pprof/profile")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("status %d type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if _, err := profile.Parse(rec.Body); err != nil {
		t.Fatal(err)
	}
	rec = ts.get("/debug/pprof/profile?seconds=5&query=" + url.QueryEscape(`{pid="1"}`))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := ts.live.asked; len(got) != 2 || got[0] != 30*time.Second || got[1] != 5*time.Second || ts.live.sels[1] != `{pid="1"}` {
		t.Errorf("live profiler asked %v %q, want 30s then 5s", got, ts.live.sels)
	}

	none := newTestServer(t, func(o *Options) { o.Live = nil })
	wantError(t, none.get("/debug/pprof/profile?seconds=1"), 503, "")
}

func TestFlameGraphEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	fg := decode[FlameGraph](t, ts.get("/api/v1/flamegraph?from=-2h&max_nodes=3"))
	if fg.Total != 100 || fg.MaxNodes != 3 || len(fg.Nodes.Parent) != 3 || fg.Pruned != (Pruned{Nodes: 3, Value: 95}) {
		t.Errorf("flame graph %+v", fg)
	}
	if !fg.From.Equal(testNow.Add(-2*time.Hour)) || !fg.To.Equal(testNow) {
		t.Errorf("range %v..%v", fg.From, fg.To)
	}
	fg = decode[FlameGraph](t, ts.get("/api/v1/flamegraph"))
	if fg.MaxNodes != 8192 || len(fg.Nodes.Parent) != 5 {
		t.Errorf("default budget %d, %d nodes", fg.MaxNodes, len(fg.Nodes.Parent))
	}
}

func TestDiffEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	d := decode[Diff](t, ts.get("/api/v1/diff?from=-1h&base_query="+url.QueryEscape(`{comm="base"}`)))
	if d.Total != 100 || d.BaseTotal != 200 || d.OrderBy != "self" || len(d.Frames) != 5 || d.Frames[0].Name != "gone" {
		t.Errorf("diff %+v", d)
	}
	calls := ts.store.calls()
	// The default base is the hour before the target, with base_query.
	if len(calls) != 2 || calls[1] != (profileCall{testNow.Add(-2 * time.Hour), testNow.Add(-time.Hour), `{comm="base"}`}) {
		t.Errorf("store calls %+v", calls)
	}
	if !d.BaseFrom.Equal(testNow.Add(-2*time.Hour)) || !d.BaseTo.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("base range %v..%v", d.BaseFrom, d.BaseTo)
	}
	// Only base_from: the base has the target's length; the selector is the target's.
	ts.store.profiles = nil
	decode[Diff](t, ts.get("/api/v1/diff?from=-30m&base_from=-1d&query="+url.QueryEscape(`{comm="app"}`)))
	if calls := ts.store.calls(); calls[1] != (profileCall{testNow.Add(-24 * time.Hour), testNow.Add(-24*time.Hour + 30*time.Minute), `{comm="app"}`}) {
		t.Errorf("base from base_from: %+v", calls[1])
	}
}

func TestSeriesEndpoint(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.HostCPUs = 2 })
	at := func(m int) time.Time { return testNow.Add(time.Duration(m-60) * time.Minute) }
	ts.store.series = []Series{
		{Labels: map[string]string{"comm": "idle"}, Points: []Point{{at(0), 0.1}, {at(1), 0.1}}},
		{Labels: map[string]string{"comm": "nginx"}, Points: []Point{{at(0), 1.5}, {at(1), math.NaN()}, {at(2), 0.5}}},
		{Labels: map[string]string{"comm": "app"}, Points: []Point{{at(0), 0.75}, {at(1), 0.75}}},
	}
	rec := ts.get("/api/v1/series?group_by=comm&step=1m&limit=2")
	golden(t, "series.golden.json", append(rec.Body.Bytes(), '\n'))
	resp := decode[SeriesResponse](t, rec)
	if resp.Unit != "cores" || resp.StepSeconds != 60 || resp.GroupBy != "comm" || resp.Truncated != 1 || len(resp.Series) != 2 {
		t.Fatalf("series %+v", resp)
	}
	// Busiest first; NaN points are gaps.
	if resp.Series[0].Labels["comm"] != "nginx" || len(resp.Series[0].Points) != 2 ||
		resp.Series[0].Points[1] != [2]float64{float64(at(2).Unix()), 0.5} || resp.Series[1].Labels["comm"] != "app" {
		t.Errorf("series %+v", resp.Series)
	}
	if c := ts.store.seriesCalls[0]; c.step != time.Minute || c.group != "comm" || !c.from.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("store asked %+v", c)
	}
	// The default step is about 240 points over the range, whole seconds.
	decode[SeriesResponse](t, ts.get("/api/v1/series?from=-24h"))
	if c := ts.store.seriesCalls[1]; c.step != 6*time.Minute || c.group != "" {
		t.Errorf("default step %v", c.step)
	}
	decode[SeriesResponse](t, ts.get("/api/v1/series?from=-1m"))
	if c := ts.store.seriesCalls[2]; c.step != time.Second {
		t.Errorf("default step of a minute %v, want the 1s minimum", c.step)
	}
	// A label the store does not know is the client's error.
	ts.store.seriesErr = fmt.Errorf("%w %q", ErrUnknownLabel, "colour")
	wantError(t, ts.get("/api/v1/series?group_by=colour"), 400, "group_by")
	ts.store.seriesErr = errors.New("disk on fire")
	wantError(t, ts.get("/api/v1/series"), 500, "")
	if !strings.Contains(ts.log.String(), "disk on fire") {
		t.Errorf("500 not logged: %s", ts.log)
	}
}

func TestLabelEndpoints(t *testing.T) {
	ts := newTestServer(t, nil)
	names := decode[LabelNamesResponse](t, ts.get("/api/v1/labels?from=-1d"))
	if !equal(names.Names, []string{"comm", "exe", "pid"}) || !names.From.Equal(testNow.Add(-24*time.Hour)) {
		t.Errorf("names %+v", names)
	}
	values := decode[LabelValuesResponse](t, ts.get("/api/v1/labels/comm/values"))
	if values.Name != "comm" || !equal(values.Values, []string{"app", "nginx"}) {
		t.Errorf("values %+v", values)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	daemonSamples := prometheus.NewCounter(prometheus.CounterOpts{Name: "ember_samples_total", Help: "test"})
	reg.MustRegister(daemonSamples)
	var notReady error = errors.New("store is opening")
	ts := newTestServer(t, func(o *Options) {
		o.Registry = reg
		o.Ready = func() error { return notReady }
	})
	if rec := ts.get("/healthz"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Errorf("healthz %d %s", rec.Code, rec.Body)
	}
	body := wantError(t, ts.get("/readyz"), 503, "")
	if !strings.Contains(body.Error, "store is opening") {
		t.Errorf("readyz error %q", body.Error)
	}
	notReady = nil
	if rec := ts.get("/readyz"); rec.Code != 200 {
		t.Errorf("readyz %d", rec.Code)
	}
	ts.get("/api/v1/flamegraph?max_nodes=x")
	rec := ts.get("/metrics")
	for _, want := range []string{
		`ember_samples_total 0`,
		`ember_http_requests_total{code="400",route="/api/v1/flamegraph"} 1`,
		`ember_http_requests_total{code="503",route="/readyz"} 1`,
		`ember_http_request_duration_seconds_count{route="/healthz"} 1`,
		`ember_http_queries_in_flight{kind="query"} 0`,
		`ember_http_queries_rejected_total{kind="live"} 0`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body)
		}
	}
	// One registry cannot carry two servers' metrics.
	if _, err := New(Options{Store: ts.store, Registry: reg}); err == nil {
		t.Error("second server on one registry: no error")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no store: no error")
	}
	if _, err := New(Options{Store: newFakeStore(), Limits: Limits{RequestTimeout: -1}}); err == nil || !strings.Contains(err.Error(), "RequestTimeout") {
		t.Errorf("negative limit: %v", err)
	}
	if _, err := New(Options{Store: newFakeStore(), Limits: Limits{DefaultMaxNodes: 10, MaxNodes: 5}}); err == nil {
		t.Error("default budget above the maximum: no error")
	}
}

func TestJSONCompressed(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.store.values["pid"] = make([]string, 2000)
	for i := range ts.store.values["pid"] {
		ts.store.values["pid"][i] = fmt.Sprint(i)
	}
	rec := ts.get("/api/v1/labels/pid/values", "Accept-Encoding: gzip")
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, Content-Encoding %q", rec.Code, rec.Header().Get("Content-Encoding"))
	}
	gz, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(gz)
	if err != nil || !bytes.Contains(body, []byte(`"1999"`)) {
		t.Errorf("decompressed %d bytes, %v", len(body), err)
	}
	// Small answers and errors are sent as they are.
	for _, target := range []string{"/api/v1/labels", "/api/v1/flamegraph?max_nodes=x"} {
		if rec := ts.get(target, "Accept-Encoding: gzip"); rec.Header().Get("Content-Encoding") != "" || !strings.HasPrefix(rec.Body.String(), "{") {
			t.Errorf("%s: Content-Encoding %q, body %q", target, rec.Header().Get("Content-Encoding"), rec.Body)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{
		"gzip": true, "gzip, deflate, br": true, "br;q=1.0, GZIP;q=0.5": true, "deflate": false, "": false,
		"gzip;q=0": false, "gzip; q=0.000": false, "x-gzip": false,
	} {
		if got := acceptsGzip([]string{v}); got != want {
			t.Errorf("acceptsGzip(%q) = %v", v, got)
		}
	}
}

// The daemon's RaiseQuery hook runs around each expensive query, on the
// goroutine that computes it, and its restore once the query is done.
func TestRaiseQueryWrapsExpensiveQueries(t *testing.T) {
	var raised, restored atomic.Int32
	ts := newTestServer(t, func(o *Options) {
		o.RaiseQuery = func() func() {
			raised.Add(1)
			return func() { restored.Add(1) }
		}
	})
	if rec := ts.get("/api/v1/flamegraph?from=-1h"); rec.Code != http.StatusOK {
		t.Fatalf("flame graph: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.get("/api/v1/labels"); rec.Code != http.StatusOK {
		t.Fatalf("labels: %d %s", rec.Code, rec.Body)
	}
	for deadline := time.Now().Add(5 * time.Second); restored.Load() < raised.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if raised.Load() == 0 || restored.Load() != raised.Load() {
		t.Errorf("raised %d times, restored %d", raised.Load(), restored.Load())
	}
}

// /readyz shows the exporters' state, and stays ready while one is behind.
func TestReadyzShowsSinks(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Sinks = func() any {
			return []map[string]any{{"name": "pyroscope", "state": "retrying", "backlog_intervals": 7}}
		}
	})
	rec := ts.get("/readyz")
	if rec.Code != 200 {
		t.Fatalf("readyz %d", rec.Code)
	}
	var body struct {
		Status string           `json:"status"`
		Sinks  []map[string]any `json:"sinks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "ready" || len(body.Sinks) != 1 || body.Sinks[0]["state"] != "retrying" || body.Sinks[0]["backlog_intervals"] != 7.0 {
		t.Errorf("readyz %s", rec.Body)
	}
}
