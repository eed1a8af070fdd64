package export

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope/api/model/labelset"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ember-profiler/ember/export/exporttest"
)

// Every interval reaches /ingest as the store has it, one multipart
// request per series, with the name, times, labels, profile type,
// credentials and tenant Pyroscope's handler reads, over TLS.
func TestPyroscopeIngestGetsEveryInterval(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscopeIngest(t, true, nil)
	ca := writeFile(t, "ca.pem", certPEM(srv.Certificate().Raw))
	token := writeFile(t, "token", "s3cret-token\n")
	reg := prometheus.NewRegistry()
	ex := newExporter(t, "pyroscope-ingest="+srv.URL+",tenant=team-a,token-file="+token+",ca-file="+ca, s, reg)
	run(t, ex)
	appendIntervals(t, s, t0, 4, ex)
	waitFor(t, "4 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 4 })
	waitFor(t, "caught up", func() bool { return ex.Status().BacklogInterval == 0 && ex.Status().State == "caught_up" })

	reqs := rec.Requests()
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
	if len(reqs) != 8 {
		t.Errorf("%d requests, want 8 (two services in each of 4 intervals)", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Get("Authorization"); got != "Bearer s3cret-token" {
			t.Errorf("Authorization %q", got)
		}
		if got := r.Header.Get("X-Scope-OrgID"); got != "team-a" {
			t.Errorf("X-Scope-OrgID %q", got)
		}
		if want := []string{"samples/count", "cpu/nanoseconds", "cpu/nanoseconds"}; !slices.Equal(r.Types, want) {
			t.Errorf("types %v, want %v", r.Types, want)
		}
		in := r.Ingest
		start := time.Unix(0, r.TimeNanos)
		if !in.Multipart || !in.From.Equal(start) || in.Until.Sub(in.From) != 10*time.Second {
			t.Errorf("multipart %v, from %s until %s, want %s + 10s", in.Multipart, in.From, in.Until, start)
		}
		if in.SampleRate != 99 || in.SpyName != ingestSpyName {
			t.Errorf("sampleRate %d spyName %q", in.SampleRate, in.SpyName)
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
	if got := testutil.ToFloat64(ex.opts.Metrics.profiles.WithLabelValues("pyroscope-ingest")); got != 8 {
		t.Errorf("profiles sent %v, want 8", got)
	}
	if got := testutil.ToFloat64(ex.opts.Metrics.intervals.WithLabelValues("pyroscope-ingest")); got != 4 {
		t.Errorf("intervals sent %v, want 4", got)
	}
}

// What Pyroscope's name parser would refuse or cut is replaced; the
// rest comes back as it was.
func TestIngestName(t *testing.T) {
	labels := []Label{
		{"comm", "a,b}c"}, {"container", " "}, {"exe", "/usr/bin/x=y {z}"}, {"my-label", "v"},
		{LabelServiceName, "Web Content/kworker:0"},
	}
	name := ingestName(labels)
	ls, err := labelset.Parse(name)
	if err != nil {
		t.Fatalf("labelset.Parse(%q): %v", name, err)
	}
	if err := labelset.ValidateLabelSet(ls); err != nil {
		t.Fatalf("%q: %v", name, err)
	}
	want := map[string]string{"__name__": "Web_Content/kworker_0", "comm": "a_b_c", "exe": "/usr/bin/x=y {z_", "my_label": "v"}
	if got := ls.Labels(); !maps2Equal(got, want) {
		t.Errorf("%q parsed as %v, want %v", name, got, want)
	}
	if got := ingestName([]Label{{LabelServiceName, "???"}}); got != "___{}" {
		t.Errorf("ingestName = %q", got)
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// /ingest down, then back: nothing missing, nothing twice, in order. Then
// 429, 500 and 503 back off, and a refusal (400) skips the interval.
func TestPyroscopeIngestFaults(t *testing.T) {
	s := openStore(t, t.TempDir())
	var mu sync.Mutex
	statuses := []int{503, 503, 503}
	rec, srv := exporttest.StartPyroscopeIngest(t, false, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			var status int
			if len(statuses) > 0 {
				status, statuses = statuses[0], statuses[1:]
			}
			mu.Unlock()
			if status != 0 {
				http.Error(w, "not now", status)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	down := true
	var downMu sync.Mutex
	rec.Fail = func(int) error {
		downMu.Lock()
		defer downMu.Unlock()
		if down {
			return connect.NewError(connect.CodeUnavailable, errors.New("down"))
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	ex := newExporter(t, "pyroscope-ingest="+srv.URL, s, reg)
	run(t, ex)
	failures := func(reason string) float64 {
		return testutil.ToFloat64(ex.opts.Metrics.failures.WithLabelValues("pyroscope-ingest", reason))
	}
	appendIntervals(t, s, t0, 5, ex)
	waitFor(t, "failures", func() bool { return failures("unavailable") >= 5 })
	if st := ex.Status(); st.State != "retrying" || st.BacklogInterval != 5 || st.LastErrorReason != "unavailable" {
		t.Errorf("status while down: %+v", st)
	}
	downMu.Lock()
	down = false
	downMu.Unlock()
	waitFor(t, "5 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 5 })
	waitFor(t, "caught up", func() bool { return ex.Status().State == "caught_up" })
	reqs := rec.Requests()
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
	if len(reqs) != 10 {
		t.Errorf("%d requests for 5 intervals of 2 series: some sent twice", len(reqs))
	}
	for i := 1; i < len(reqs); i++ {
		if reqs[i].TimeNanos < reqs[i-1].TimeNanos {
			t.Errorf("out of order: %d after %d", reqs[i].TimeNanos, reqs[i-1].TimeNanos)
		}
	}

	// 429, 500, then a refusal of the next interval's first series.
	mu.Lock()
	statuses = []int{429, 500, 400}
	mu.Unlock()
	appendIntervals(t, s, t0.Add(time.Minute), 2, ex)
	waitFor(t, "the last interval", func() bool { return len(rec.Requests()) == 12 })
	if failures("rate_limited") != 1 || failures("server_error") != 1 || failures("rejected") != 1 {
		t.Errorf("failures: rate_limited %v, server_error %v, rejected %v; want 1 each",
			failures("rate_limited"), failures("server_error"), failures("rejected"))
	}
	if got := testutil.ToFloat64(ex.opts.Metrics.skips.WithLabelValues("pyroscope-ingest", "rejected")); got != 1 {
		t.Errorf("skipped %v, want 1", got)
	}
	if got := rec.Requests()[11].TimeNanos; got != t0.Add(time.Minute+10*time.Second).UnixNano() {
		t.Errorf("the last request is of %s", time.Unix(0, got).UTC())
	}
}
