package export

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/pyroscope/api/model/labelset"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ember-profiler/ember/export/exporttest"
)

// Every interval reaches /ingest as the store has it, one multipart
// request per series, with the name, times, labels, profile type,
// credentials and tenant Pyroscope's handler reads, over TLS.
func TestPyroscopeIngestGetsEveryInterval(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec, srv := exporttest.StartPyroscopeIngest(t, true, nil)
	ex := sendFourOverTLS(t, "pyroscope-ingest", srv, s, &rec.Receiver)
	waitFor(t, "caught up", func() bool { return ex.Status().BacklogInterval == 0 && ex.Status().State == "caught_up" })

	reqs := rec.Requests()
	checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
	if len(reqs) != 8 {
		t.Errorf("%d requests, want 8 (two services in each of 4 intervals)", len(reqs))
	}
	for _, r := range reqs {
		checkPyroscopeRequest(t, r)
		in := r.Ingest
		start := time.Unix(0, r.TimeNanos)
		if !in.Multipart || !in.From.Equal(start) || in.Until.Sub(in.From) != 10*time.Second {
			t.Errorf("multipart %v, from %s until %s, want %s + 10s", in.Multipart, in.From, in.Until, start)
		}
		if in.SampleRate != 99 || in.SpyName != ingestSpyName {
			t.Errorf("sampleRate %d spyName %q", in.SampleRate, in.SpyName)
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
// 429, 500 and 503 back off, and a refusal (400) of one series passes over
// that series alone: the rest of its interval is sent.
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
	ex := startExporter(t, "pyroscope-ingest="+srv.URL, s)
	reqs := downThenBack(t, s, ex, &rec.Receiver, 5, 5)
	if len(reqs) != 10 {
		t.Errorf("%d requests for 5 intervals of 2 series: some sent twice", len(reqs))
	}
	checkInOrder(t, reqs, true)

	// 429, 500, then a refusal of the next interval's first series.
	mu.Lock()
	statuses = []int{429, 500, 400}
	mu.Unlock()
	appendIntervals(t, s, t0.Add(time.Minute), 2, ex)
	waitFor(t, "the last interval", func() bool { return len(rec.Requests()) == 13 })
	if failures(ex, "rate_limited") != 1 || failures(ex, "server_error") != 1 || failures(ex, "rejected") != 1 {
		t.Errorf("failures: rate_limited %v, server_error %v, rejected %v; want 1 each",
			failures(ex, "rate_limited"), failures(ex, "server_error"), failures(ex, "rejected"))
	}
	if got := testutil.ToFloat64(ex.opts.Metrics.skips.WithLabelValues("pyroscope-ingest", "rejected")); got != 0 {
		t.Errorf("skipped %v intervals, want none: one series was refused, not the interval", got)
	}
	if got := testutil.ToFloat64(ex.opts.Metrics.refused.WithLabelValues("pyroscope-ingest")); got != 1 {
		t.Errorf("refused %v profiles, want 1", got)
	}
	reqs = rec.Requests()
	if got := reqs[10].TimeNanos; got != t0.Add(time.Minute).UnixNano() {
		t.Errorf("the refused series' interval-mate is of %s, want the first new interval", time.Unix(0, got).UTC())
	}
	if got := reqs[12].TimeNanos; got != t0.Add(time.Minute+10*time.Second).UnixNano() {
		t.Errorf("the last request is of %s", time.Unix(0, got).UTC())
	}
}

// With gzip on, a push request is gzipped whole (Connect's
// Content-Encoding) around raw pprof, which Pyroscope's distributor reads
// as it reads gzipped pprof; /ingest gzips each profile; gzip=false
// compresses nothing. Every way, the receiver decodes what the store has.
func TestPyroscopeCompression(t *testing.T) {
	for _, tc := range []struct {
		target          string
		requestEncoding string
		gzippedProfiles bool
	}{
		{"pyroscope", "gzip", false},
		{"pyroscope,gzip=false", "", false},
		{"pyroscope-ingest", "", true},
		{"pyroscope-ingest,gzip=false", "", false},
	} {
		t.Run(tc.target, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			var rec *exporttest.Receiver
			var url string
			var mu sync.Mutex
			var encodings []string
			wrap := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					encodings = append(encodings, r.Header.Get("Content-Encoding"))
					mu.Unlock()
					next.ServeHTTP(w, r)
				})
			}
			kind, opts, _ := strings.Cut(tc.target, ",")
			if kind == "pyroscope" {
				r, srv := exporttest.StartPyroscope(t, false, wrap)
				rec, url = &r.Receiver, srv.URL
			} else {
				r, srv := exporttest.StartPyroscopeIngest(t, false, wrap)
				rec, url = &r.Receiver, srv.URL
			}
			if opts != "" {
				opts = "," + opts
			}
			ex := startExporter(t, kind+"="+url+opts, s)
			appendIntervals(t, s, t0, 2, ex)
			waitFor(t, "2 intervals", func() bool { return len(intervalsIn(rec.Requests())) == 2 })
			reqs := rec.Requests()
			checkSameAsStore(t, s, reqs, func(d exporttest.Sample) string { return d.Labels["service_name"] })
			for _, r := range reqs {
				profiles := len(r.IDs) // a push: an ID per profile
				if r.Ingest != nil {
					profiles = 1
				}
				want := 0
				if tc.gzippedProfiles {
					want = profiles
				}
				if r.GzippedProfiles != want {
					t.Errorf("%d of %d profiles gzipped, want %d", r.GzippedProfiles, profiles, want)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range encodings {
				if e != tc.requestEncoding {
					t.Errorf("Content-Encoding %q, want %q", e, tc.requestEncoding)
				}
			}
		})
	}
}
