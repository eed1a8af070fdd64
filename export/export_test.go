package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ember-profiler/ember/export/exporttest"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *storage.Store {
	t.Helper()
	s, err := storage.Open(storage.Options{Dir: dir, MinFreeDiskBytes: 1 << 20, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testInterval is a host's interval: two programs, three processes, a
// few stacks each, the counts varying with seed.
func testInterval(start time.Time, seed int) *profile.Profile {
	const period = int64(time.Second / 99)
	p := &profile.Profile{
		SampleType: schema.CPUSampleTypes(), PeriodType: schema.PeriodType.ValueType(), Period: period,
		TimeNanos: start.UnixNano(), DurationNanos: int64(10 * time.Second),
	}
	fn := map[string]*profile.Function{}
	for i, name := range []string{"main", "run", "alpha", "beta", "gamma"} {
		f := &profile.Function{ID: uint64(i + 1), Name: name, SystemName: name, Filename: "hot.c"}
		fn[name] = f
		p.Function = append(p.Function, f)
	}
	var locID uint64
	procs := []struct {
		comm string
		pid  int64
	}{{"app-a", 100}, {"app-b", 200}, {"app-b", 201}}
	for pi, proc := range procs {
		m := &profile.Mapping{ID: uint64(pi + 1), Start: 0x400000, Limit: 0x500000, File: "/usr/bin/" + proc.comm, HasFunctions: true}
		p.Mapping = append(p.Mapping, m)
		loc := func(name string) *profile.Location {
			locID++
			l := &profile.Location{ID: locID, Mapping: m, Address: 0x400000 + locID*16, Line: []profile.Line{{Function: fn[name], Line: int64(locID)}}}
			p.Location = append(p.Location, l)
			return l
		}
		mainL, runL := loc("main"), loc("run")
		for li, leaf := range []string{"alpha", "beta", "gamma"} {
			n := int64((seed+1)*(pi+1)*(3-li) + li)
			p.Sample = append(p.Sample, &profile.Sample{
				Location: []*profile.Location{loc(leaf), runL, mainL},
				Value:    []int64{n, n * period},
				Label: map[string][]string{"comm": {proc.comm}, "exe": {"/usr/bin/" + proc.comm},
					"cgroup": {"/system.slice/" + proc.comm + ".service"}},
				NumLabel: map[string][]int64{"pid": {proc.pid}, "tid": {proc.pid}},
			})
		}
	}
	return p
}

var host = map[string]string{"host": "web-1"}

// appendIntervals stores n intervals after the newest and wakes ex.
func appendIntervals(t *testing.T, s *storage.Store, first time.Time, n int, ex ...*Exporter) {
	t.Helper()
	for i := range n {
		if err := s.Append(context.Background(), testInterval(first.Add(time.Duration(i)*10*time.Second), i), host); err != nil {
			t.Fatal(err)
		}
		for _, e := range ex {
			e.Wake()
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run starts ex until the test ends or stop is called.
func run(t *testing.T, ex *Exporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			ex.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func newExporter(t *testing.T, target string, s *storage.Store, reg prometheus.Registerer) *Exporter {
	t.Helper()
	tgt, err := ParseTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	var m *Metrics
	if reg != nil {
		m = NewMetrics(reg)
	}
	ex, err := New(tgt, Options{History: s, Metrics: m, Logger: quiet(), Poll: 50 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 160 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// startExporter runs an exporter of target over s, with metrics of its own.
func startExporter(t *testing.T, target string, s *storage.Store) *Exporter {
	t.Helper()
	ex := newExporter(t, target, s, prometheus.NewRegistry())
	run(t, ex)
	return ex
}

// failures is how many tries of ex's target failed for reason.
func failures(ex *Exporter, reason string) float64 {
	return testutil.ToFloat64(ex.opts.Metrics.failures.WithLabelValues(ex.Name(), reason))
}

// goDown makes rec answer every request as unavailable until up is called.
func goDown(rec *exporttest.Receiver) (up func()) {
	var mu sync.Mutex
	down := true
	rec.Fail = func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return connect.NewError(connect.CodeUnavailable, errors.New("down"))
		}
		return nil
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		down = false
	}
}

// downThenBack stores n intervals while rec is down (goDown), checks that
// ex retries them, at least tries times, then brings rec back and returns
// what it took once every interval is there, each as the store has it.
func downThenBack(t *testing.T, s *storage.Store, ex *Exporter, rec *exporttest.Receiver, n int, tries float64) []exporttest.Request {
	t.Helper()
	up := goDown(rec)
	appendIntervals(t, s, t0, n, ex)
	waitFor(t, "failures", func() bool { return failures(ex, "unavailable") >= tries })
	if st := ex.Status(); st.State != "retrying" || st.BacklogInterval != n || st.LastErrorReason != "unavailable" {
		t.Errorf("status while down: %+v", st)
	}
	up()
	waitFor(t, fmt.Sprintf("%d intervals", n), func() bool { return len(intervalsIn(rec.Requests())) == n })
	waitFor(t, "caught up", func() bool { return ex.Status().State == "caught_up" })
	reqs := rec.Requests()
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
	return reqs
}

// checkInOrder says whether reqs go forward in time: each request a later
// interval, or with severalPerInterval, none an earlier one.
func checkInOrder(t *testing.T, reqs []exporttest.Request, severalPerInterval bool) {
	t.Helper()
	for i := 1; i < len(reqs); i++ {
		if prev := reqs[i-1].TimeNanos; reqs[i].TimeNanos < prev || reqs[i].TimeNanos == prev && !severalPerInterval {
			t.Errorf("out of order: %d after %d", reqs[i].TimeNanos, prev)
		}
	}
}

// sendFourOverTLS runs an exporter of kind to srv over TLS (its CA from a
// file), with a token file and a tenant, stores four intervals and returns
// once rec has them all.
func sendFourOverTLS(t *testing.T, kind string, srv *httptest.Server, s *storage.Store, rec *exporttest.Receiver) *Exporter {
	t.Helper()
	ca := writeFile(t, "ca.pem", certPEM(srv.Certificate().Raw))
	token := writeFile(t, "token", "s3cret-token\n")
	ex := startExporter(t, kind+"="+srv.URL+",tenant=team-a,token-file="+token+",ca-file="+ca, s)
	appendIntervals(t, s, t0, 4, ex)
	waitFor(t, "4 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 4 })
	return ex
}

// checkPyroscopeRequest checks a request of sendFourOverTLS: its token, its
// tenant, Pyroscope's CPU profile types, and the labels exported by default.
func checkPyroscopeRequest(t *testing.T, r exporttest.Request) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer s3cret-token" {
		t.Errorf("Authorization %q", got)
	}
	if got := r.Header.Get("X-Scope-OrgID"); got != "team-a" {
		t.Errorf("X-Scope-OrgID %q", got)
	}
	if want := []string{"samples/count", "cpu/nanoseconds", "cpu/nanoseconds"}; !slices.Equal(r.Types, want) {
		t.Errorf("types %v, want %v (process_cpu:cpu:nanoseconds:cpu:nanoseconds)", r.Types, want)
	}
	for _, smp := range r.Samples {
		l := smp.Labels
		if l["__name__"] != PyroscopeProfileName || l["host"] != "web-1" || l["exe"] != "/usr/bin/"+l["service_name"] {
			t.Fatalf("labels %v", l)
		}
		if _, ok := l["pid"]; ok {
			t.Fatalf("pid exported by default: %v", l)
		}
		if _, ok := l["cgroup"]; ok {
			t.Fatalf("cgroup exported: %v", l)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// intervalsIn groups received samples by interval start.
func intervalsIn(reqs []exporttest.Request) map[int64][]exporttest.Sample {
	m := map[int64][]exporttest.Sample{}
	for _, r := range reqs {
		m[r.TimeNanos] = append(m[r.TimeNanos], r.Samples...)
	}
	return m
}

// checkSameAsStore compares each stored interval with what the receiver
// decoded: the same cpu per service and stack, nothing else.
func checkSameAsStore(t *testing.T, s *storage.Store, reqs []exporttest.Request, service func(exporttest.Sample) string) {
	t.Helper()
	got := intervalsIn(reqs)
	refs, _ := s.IntervalsAfter(0, 1000)
	if len(got) != len(refs) {
		t.Errorf("receiver has %d intervals, the store %d", len(got), len(refs))
	}
	for _, ref := range refs {
		p, err := s.ReadInterval(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for _, smp := range p.Sample {
			want[smp.Label["comm"][0]+" "+exporttest.PprofStack(smp)] += smp.Value[1]
		}
		have := exporttest.CPUBy(got[ref.Key], func(d exporttest.Sample) string { return service(d) + " " + d.Stack })
		if d := exporttest.DiffMaps(have, want); d != "" {
			t.Errorf("interval %s differs from the store:\n%s", ref.Start(), d)
		}
	}
}

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// Every interval reaches Pyroscope as the store has it, split by service,
// with its labels, profile type, credentials and tenant, over TLS.
func TestPyroscopeGetsEveryInterval(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscope(t, true, nil)
	ex := sendFourOverTLS(t, "pyroscope", srv, s, &rec.Receiver)

	reqs := rec.Requests()
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
	ids := map[string]bool{}
	for _, r := range reqs {
		checkPyroscopeRequest(t, r)
		for _, id := range r.IDs {
			if ids[id] {
				t.Errorf("dedupe ID %s used twice", id)
			}
			ids[id] = true
		}
	}
	// The receiver has the last request before the exporter has its answer.
	waitFor(t, "backlog 0", func() bool { return ex.Status().BacklogInterval == 0 && ex.Status().State == "caught_up" })
	// app-a and app-b (two pids, one series) in each of 4 intervals.
	if got := testutil.ToFloat64(ex.opts.Metrics.profiles.WithLabelValues("pyroscope")); got != 8 {
		t.Errorf("profiles sent %v, want 8", got)
	}
	if got := testutil.ToFloat64(ex.opts.Metrics.intervals.WithLabelValues("pyroscope")); got != 4 {
		t.Errorf("intervals sent %v, want 4", got)
	}
}

// The pid label goes out when the target asks for it.
func TestPyroscopeKeepsPIDWhenAsked(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	ex := newExporter(t, "pyroscope="+srv.URL+",pid=true,service-name={comm}-svc", s, nil)
	run(t, ex)
	appendIntervals(t, s, t0, 1, ex)
	waitFor(t, "an interval", func() bool { return len(rec.Requests()) == 1 })
	series := map[string]bool{}
	for _, smp := range rec.Requests()[0].Samples {
		series[smp.Labels["service_name"]+"/"+smp.Labels["pid"]] = true
	}
	if want := map[string]bool{"app-a-svc/100": true, "app-b-svc/200": true, "app-b-svc/201": true}; !mapsEqual(series, want) {
		t.Errorf("series %v, want %v", series, want)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// Every interval reaches an OTLP receiver (the Collector's own decoder) as
// the store has it, with semantic-convention attributes.
func TestOTLPGetsEveryInterval(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, addr := exporttest.StartOTLP(t)
	basic := writeFile(t, "basic", "ember:pa55word")
	ex := newExporter(t, "otlp=http://"+addr+",basic-auth-file="+basic+",tenant=team-b,pid=true", s, nil)
	run(t, ex)
	appendIntervals(t, s, t0, 3, ex)
	waitFor(t, "3 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 3 })
	reqs := rec.Requests()
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service.name"] })
	for _, r := range reqs {
		if got := r.Header.Get("Authorization"); !strings.HasPrefix(got, "Basic ") {
			t.Errorf("Authorization %q", got)
		}
		if got := r.Header.Get("X-Scope-Orgid"); got != "team-b" {
			t.Errorf("X-Scope-OrgID %q", got)
		}
		if want := []string{"samples/count", "cpu/nanoseconds"}; !slices.Equal(slices.Compact(slices.Sorted(slices.Values(r.Types))), slices.Sorted(slices.Values(want))) {
			t.Errorf("types %v", r.Types)
		}
		for _, smp := range r.Samples {
			l := smp.Labels
			if l["host.name"] != "web-1" || l["process.executable.path"] != "/usr/bin/"+l["service.name"] || l["process.pid"] == "" {
				t.Fatalf("attributes %v", l)
			}
		}
	}
}

// A backend that is not there, then is: nothing is missing, in order.
func TestBackendDownThenBack(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	ex := startExporter(t, "pyroscope="+srv.URL, s)
	checkInOrder(t, downThenBack(t, s, ex, &rec.Receiver, 5, 3), false)
}

// 429s and 500s are retried with growing waits, one request at a time.
func TestRateLimitAndServerErrorsBackOff(t *testing.T) {
	s := openStore(t, t.TempDir())
	var mu sync.Mutex
	var tries []time.Time
	inFlight, most := 0, 0
	rec, srv := exporttest.StartPyroscope(t, false, func(next httpHandler) httpHandler {
		return handlerFunc(func(w responseWriter, r *request) {
			mu.Lock()
			tries = append(tries, time.Now())
			n := len(tries)
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
			switch {
			case n <= 3:
				w.WriteHeader(429)
			case n <= 6:
				http500(w)
			default:
				next.ServeHTTP(w, r)
			}
		})
	})
	ex := startExporter(t, "pyroscope="+srv.URL, s)
	appendIntervals(t, s, t0, 2, ex)
	waitFor(t, "2 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Errorf("%d requests at once, want 1", most)
	}
	// Each wait is at least half its backoff step (jitter), whatever the load.
	for k := 1; k < 7; k++ {
		step := min(160*time.Millisecond, 20*time.Millisecond<<(k-1))
		if gap := tries[k].Sub(tries[k-1]); gap < step/2 {
			t.Errorf("try %d came %s after the one before, want at least %s", k+1, gap, step/2)
		}
	}
	if failures(ex, "unavailable") != 3 || failures(ex, "server_error") != 3 {
		t.Errorf("failures: unavailable %v (429 over Connect), server_error %v; want 3 and 3",
			failures(ex, "unavailable"), failures(ex, "server_error"))
	}
}

// A backend slower than the timeout: the try is abandoned and repeated.
func TestSlowBackendTimesOut(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	rec.Fail = func(n int) error {
		if n == 0 {
			time.Sleep(time.Second)
		}
		return nil
	}
	ex := startExporter(t, "pyroscope="+srv.URL+",timeout=200ms", s)
	appendIntervals(t, s, t0, 2, ex)
	waitFor(t, "2 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 2 })
	if got := failures(ex, "timeout"); got < 1 {
		t.Errorf("timeouts counted: %v", got)
	}
}

// A refused interval is counted and passed over; the next goes on.
func TestRejectedIntervalIsSkipped(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	rec.Fail = func(n int) error {
		if n == 0 {
			return connect.NewError(connect.CodeInvalidArgument, errors.New("profile too old"))
		}
		return nil
	}
	ex := startExporter(t, "pyroscope="+srv.URL, s)
	appendIntervals(t, s, t0, 3, ex)
	waitFor(t, "2 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 2 })
	if got := testutil.ToFloat64(ex.opts.Metrics.skips.WithLabelValues("pyroscope", "rejected")); got != 1 {
		t.Errorf("skipped %v, want 1", got)
	}
}

// A push request refused for good costs only its own series: the next
// requests of the interval are sent, and the interval counts as sent.
// (Pyroscope refuses by series, e.g. a label value too long, and keeps the
// valid series of the request it answers invalid.)
func TestRefusedRequestPassesOverItsSeriesAlone(t *testing.T) {
	defer func(n int) { maxPushBytes = n }(maxPushBytes)
	maxPushBytes = 1 // a request per series
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	rec.Fail = func(n int) error {
		if n == 0 {
			return connect.NewError(connect.CodeInvalidArgument, errors.New("label value too long"))
		}
		return nil
	}
	ex := startExporter(t, "pyroscope="+srv.URL, s)
	appendIntervals(t, s, t0, 2, ex)
	waitFor(t, "3 series", func() bool { return len(rec.Requests()) == 3 })
	if got := len(intervalsIn(rec.Requests())); got != 2 {
		t.Errorf("series of %d intervals received, want 2", got)
	}
	m := ex.opts.Metrics
	if got := testutil.ToFloat64(m.refused.WithLabelValues("pyroscope")); got != 1 {
		t.Errorf("refused %v profiles, want 1", got)
	}
	if got := testutil.ToFloat64(m.skips.WithLabelValues("pyroscope", "rejected")); got != 0 {
		t.Errorf("skipped %v intervals, want none", got)
	}
	waitFor(t, "2 intervals counted sent", func() bool { return testutil.ToFloat64(m.intervals.WithLabelValues("pyroscope")) == 2 })
}

// An exporter stopped and started again, on a reopened store, resumes
// from its cursor: nothing is missing and nothing sent twice.
func TestRestartResumesFromCursor(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	ex := newExporter(t, "pyroscope="+srv.URL, s, nil)
	stop := run(t, ex)
	appendIntervals(t, s, t0, 3, ex)
	waitFor(t, "3 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 3 })
	// Stopped mid-request, the interval would be sent again after the
	// restart, under the same dedupe IDs; stopped caught up, none is.
	waitFor(t, "caught up", func() bool { return ex.Status().State == "caught_up" })
	stop()
	appendIntervals(t, s, t0.Add(30*time.Second), 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	ex = newExporter(t, "pyroscope="+srv.URL, s, nil)
	run(t, ex)
	waitFor(t, "6 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 6 })
	time.Sleep(100 * time.Millisecond)
	reqs := rec.Requests()
	if len(reqs) != 6 {
		t.Errorf("%d requests for 6 intervals: some sent twice", len(reqs))
	}
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
}

// A target added to a daemon with history starts at the newest interval.
func TestNewTargetStartsAtNewest(t *testing.T) {
	s := openStore(t, t.TempDir())
	appendIntervals(t, s, t0, 3)
	rec, srv := exporttest.StartPyroscope(t, false, nil)
	ex := newExporter(t, "pyroscope="+srv.URL, s, nil)
	run(t, ex)
	waitFor(t, "caught up", func() bool { return ex.Status().State == "caught_up" })
	appendIntervals(t, s, t0.Add(time.Minute), 1, ex)
	waitFor(t, "1 interval", func() bool { return len(rec.Requests()) == 1 })
	if got := rec.Requests()[0].TimeNanos; got != t0.Add(time.Minute).UnixNano() {
		t.Errorf("sent the interval at %s first", time.Unix(0, got).UTC())
	}

	// One that asks for the history gets all of it.
	hist := newExporter(t, "pyroscope="+srv.URL+",name=all,history=true", s, nil)
	run(t, hist)
	waitFor(t, "the history", func() bool { return len(rec.Requests()) == 1+4 })
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in, err string
		check   func(Target) bool
	}{
		{in: "pyroscope=https://p:4040", check: func(t Target) bool {
			return t.Name == "pyroscope" && t.Gzip && !t.KeepPID && t.Timeout == DefaultTimeout
		}},
		{in: "otlp=collector:4317", check: func(t Target) bool { return t.URL.Scheme == "https" && t.URL.Host == "collector:4317" }},
		{in: "otlp=http://collector:4317,name=local,gzip=false", check: func(t Target) bool { return t.URL.Scheme == "http" && t.Name == "local" && !t.Gzip }},
		{in: "pyroscope=https://u:secret@p:4040,timeout=5s,pid=true", check: func(t Target) bool {
			return t.Timeout == 5*time.Second && t.KeepPID && !strings.Contains(t.String(), "secret")
		}},
		{in: "pyroscope-ingest=https://p:4040/pyro,gzip=false", check: func(t Target) bool {
			return t.Kind == KindPyroscopeIngest && t.Name == "pyroscope-ingest" && !t.Gzip &&
				newPyroscopeIngest(t, credentials{}, nil).endpoint.String() == "https://p:4040/pyro/ingest"
		}},
		{in: "pyroscope-ingest=p:4040", err: "http:// or https://"},
		{in: "zipkin=x", err: "unknown kind"},
		{in: "pyroscope", err: "want kind=endpoint"},
		{in: "pyroscope=p:4040", err: "http:// or https://"},
		{in: "otlp=collector", err: "host:port"},
		{in: "otlp=c:4317,color=red", err: "unknown option"},
		{in: "otlp=c:4317,token-file=a,basic-auth-file=b", err: "give one"},
		{in: "otlp=c:4317,service-name={comm", err: "without }"},
		{in: "pyroscope=https://u:secret@p:4040,pid=maybe", err: "pid"},
	} {
		got, err := ParseTarget(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseTarget(%q) = %v, want error with %q", c.in, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseTarget(%q): the error shows the password: %v", c.in, err)
			}
			continue
		}
		if err != nil || !c.check(got) {
			t.Errorf("ParseTarget(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func TestTemplate(t *testing.T) {
	smp := &profile.Sample{Label: map[string][]string{"comm": {"nginx"}, "container": {"abc"}}, NumLabel: map[string][]int64{"pid": {7}}}
	for in, want := range map[string]string{
		"{comm}": "nginx", "{container}/{comm}": "abc/nginx", "svc-{pid}": "svc-7", "{exe}": "unknown", "fixed": "fixed",
	} {
		tmpl, err := ParseTemplate(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.render(smp); got != want {
			t.Errorf("%q rendered %q, want %q", in, got, want)
		}
	}
	if _, err := ParseTemplate("{no-dash}"); err == nil {
		t.Error("a bad label name parsed")
	}
}
