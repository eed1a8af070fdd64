package ui_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/ui"
	"github.com/ember-profiler/ember/web"
)

// The busy host of issue 21, small: processes whose stacks share names
// (_start and main in every program, run both native and JIT), a marker,
// and a deep recursion, on 2 CPUs kept busy (2 cores in every interval).
type procSpec struct {
	comm, exe string
	pid       int64
	frames    []string // root first, "name@binary"; binary "" is JIT code
	share     float64
}

func incidentProcs() []procSpec {
	deep := []string{"_start@/usr/bin/deep"}
	for i := range 300 {
		deep = append(deep, fmt.Sprintf("deep.f%d@/usr/bin/deep", i))
	}
	return []procSpec{
		{"server", "/usr/sbin/server", 10, []string{"_start@/usr/sbin/server", "main@/usr/sbin/server", "serve@/usr/sbin/server"}, 0.40},
		{"server", "/usr/sbin/server", 11, []string{"_start@/usr/sbin/server", "main@/usr/sbin/server", "serve@/usr/sbin/server"}, 0.10},
		{"server", "/usr/sbin/server", 10, []string{"[truncated]@", "serve@/usr/sbin/server"}, 0.05},
		{"python3", "/usr/bin/python3.11", 20, []string{"_start@/usr/bin/python3.11", "main@/usr/bin/python3.11", "_PyEval_EvalFrameDefault@/usr/bin/python3.11"}, 0.30},
		{"node", "/usr/bin/node", 30, []string{"_start@/usr/bin/node", "main@/usr/bin/node", "run@/usr/bin/node"}, 0.05},
		{"node", "/usr/bin/node", 30, []string{"_start@/usr/bin/node", "main@/usr/bin/node", "run@"}, 0.05},
		{"deep", "/usr/bin/deep", 40, deep, 0.05},
	}
}

// incidentBuilder makes profiles whose frames carry their own binaries.
type incidentBuilder struct {
	p    *profile.Profile
	maps map[string]*profile.Mapping
	locs map[string]*profile.Location
}

func newIncidentProfile(start time.Time, d time.Duration) *incidentBuilder {
	return &incidentBuilder{
		p: &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
			PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_101_010,
			TimeNanos: start.UnixNano(), DurationNanos: d.Nanoseconds(),
		},
		maps: map[string]*profile.Mapping{}, locs: map[string]*profile.Location{},
	}
}

// serveSource is the file the fixture's serve function is in: this one.
var serveSource, _ = filepath.Abs("incident_data_test.go")

func (b *incidentBuilder) location(frame string) *profile.Location {
	if l, ok := b.locs[frame]; ok {
		return l
	}
	name, bin, _ := strings.Cut(frame, "@")
	if bin == "" {
		bin = "//anon" // JIT code: anonymous memory
	}
	m := b.maps[bin]
	if m == nil {
		n := uint64(len(b.maps) + 1)
		m = &profile.Mapping{ID: n, File: bin, Start: n << 32, Limit: (n + 1) << 32}
		b.maps[bin] = m
		b.p.Mapping = append(b.p.Mapping, m)
	}
	f := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: name, SystemName: name}
	if name == "serve" {
		f.Filename = serveSource // a source file on this host, for the source view's text
	}
	b.p.Function = append(b.p.Function, f)
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Mapping: m, Address: m.Start + uint64(len(b.p.Location))*16,
		Line: []profile.Line{{Function: f, Line: 1}}}
	b.p.Location = append(b.p.Location, l)
	b.locs[frame] = l
	return l
}

func (b *incidentBuilder) add(ps procSpec, cpuNanos int64) {
	s := &profile.Sample{Value: []int64{max(1, cpuNanos/10_101_010), cpuNanos},
		Label:    map[string][]string{"comm": {ps.comm}, "exe": {ps.exe}},
		NumLabel: map[string][]int64{"pid": {ps.pid}, "tid": {ps.pid}}}
	for i := len(ps.frames) - 1; i >= 0; i-- {
		s.Location = append(s.Location, b.location(ps.frames[i]))
	}
	b.p.Sample = append(b.p.Sample, s)
}

// incidentRange is what fillIncident wrote: 30 minutes of 10 s intervals
// at 2 cores, ending 10 minutes ago, and nothing in the 30 minutes before.
type incidentRange struct{ from, to, emptyFrom time.Time }

func fillIncident(t testing.TB, store *storage.Store) incidentRange {
	t.Helper()
	end := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	r := incidentRange{from: end.Add(-30 * time.Minute), to: end, emptyFrom: end.Add(-60 * time.Minute)}
	for iv := range 180 {
		start := r.from.Add(time.Duration(iv) * 10 * time.Second)
		b := newIncidentProfile(start, 10*time.Second)
		for _, ps := range incidentProcs() {
			b.add(ps, int64(ps.share*20e9)) // 20 CPU-seconds per 10 s: 2 cores
		}
		if err := store.Append(context.Background(), b.p, map[string]string{"host": "busy-1"}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// switchable serves the API and UI on a 2-CPU host and can be made to
// fail: down drops every API connection as a dead daemon would. It counts
// the 429s it answers.
type switchable struct {
	down      atomic.Bool
	tooMany   atomic.Int64
	mu        sync.Mutex
	maxInAPI  int
	inAPI     int
	delayEach time.Duration
}

func (sw *switchable) serve(t testing.TB, store web.Store, limits web.Limits) string {
	t.Helper()
	api, err := web.New(web.Options{Store: store, UI: ui.FS(), Limits: limits, HostCPUs: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := api.Handler()
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			h.ServeHTTP(w, r)
			return
		}
		if sw.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		sw.mu.Lock()
		sw.inAPI++
		sw.maxInAPI = max(sw.maxInAPI, sw.inAPI)
		sw.mu.Unlock()
		defer func() { sw.mu.Lock(); sw.inAPI--; sw.mu.Unlock() }()
		if sw.delayEach > 0 {
			time.Sleep(sw.delayEach)
		}
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusTooManyRequests {
			sw.tooMany.Add(1)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: wrapped, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
