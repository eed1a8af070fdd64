package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/pipeline"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/symbolizer"
	"github.com/ember-profiler/ember/web"
)

// wallSource is a sampler that measures wall-clock time beside CPU
// samples, as the off-CPU issue's will: its first drain has CPU samples
// alone, the next two a second value per sample, wall nanoseconds, for one
// stack that runs and one that waits. Later drains are empty.
type wallSource struct {
	mu     sync.Mutex
	drains int
	last   time.Time
}

func (s *wallSource) Drain() (*model.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	b := &model.Batch{Start: s.last, End: now, FrequencyHz: 100, PeriodNanos: 10_000_000}
	s.last = now
	s.drains++
	stack := func(leaf string) []model.Frame {
		return []model.Frame{
			{Kind: model.FrameInterpreted, Function: leaf, File: "app.py", Line: 7},
			{Kind: model.FrameInterpreted, Function: "main", File: "app.py", Line: 1},
		}
	}
	switch s.drains {
	case 1:
		b.Samples = []model.Sample{{PID: 42, TID: 42, Comm: "app", UserFrames: stack("spin"), Count: 3}}
	case 2, 3:
		b.ValueTypes = []model.ValueType{{Type: schema.Wall.Type, Unit: schema.Wall.Unit}}
		b.Samples = []model.Sample{
			{PID: 42, TID: 42, Comm: "app", UserFrames: stack("spin"), Count: 3, Values: []int64{30_000_000}},
			{PID: 42, TID: 43, Comm: "app", UserFrames: stack("sleep"), Values: []int64{70_000_000}},
		}
	}
	return b, nil
}

// A second sample type travels from the sampler's batches through the
// pipeline (named by the symbolizer, merged with a drain that lacks it),
// into the store, out of the HTTP API and into a file `go tool pprof`
// reads; the flame graph can be asked for it.
func TestWallSampleTypeThroughAPI(t *testing.T) {
	store, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sym, err := symbolizer.New(symbolizer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := &wallSource{last: time.Now()}
	sink := &storeSink{store: store, log: slog.New(slog.DiscardHandler),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "append_seconds"})}
	pipe, err := pipeline.New(pipeline.Config{
		Source: src, Namer: sym, Sinks: []pipeline.SinkConfig{{Sink: sink}},
		DrainInterval: 5 * time.Millisecond, ShutdownTimeout: time.Minute, FailFast: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipe.Run(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		src.mu.Lock()
		n := src.drains
		src.mu.Unlock()
		if n > 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d drains in 30 s", n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("pipeline: %v", err)
	}

	api, err := web.New(web.Options{Store: web.FromStorage(store), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
		}
		return body
	}

	raw := get("/api/v1/profile?from=-1h")
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, st := range p.SampleType {
		types = append(types, st.Type+"/"+st.Unit)
	}
	if got := strings.Join(types, " "); got != "samples/count cpu/nanoseconds wall/nanoseconds" {
		t.Fatalf("sample types %q", got)
	}
	var cpu, wall int64
	for _, s := range p.Sample {
		cpu, wall = cpu+s.Value[1], wall+s.Value[2]
	}
	if cpu != 3*30_000_000 || wall != 2*100_000_000 {
		t.Errorf("cpu %d and wall %d nanoseconds, want %d and %d", cpu, wall, 3*30_000_000, 2*100_000_000)
	}

	var fg struct {
		SampleType string `json:"sample_type"`
		Total      int64  `json:"total"`
	}
	if err := json.Unmarshal(gunzipIfNeeded(t, get("/api/v1/flamegraph?from=-1h&sample_type=wall")), &fg); err != nil {
		t.Fatal(err)
	}
	if fg.Total != 2*100_000_000 {
		t.Errorf("flame graph of wall time: total %d (sample type %q), want %d", fg.Total, fg.SampleType, 2*100_000_000)
	}

	// type= names the sample type the download opens with, and what a
	// series sums.
	typed, err := profile.Parse(bytes.NewReader(get("/api/v1/profile?from=-1h&type=wall")))
	if err != nil {
		t.Fatal(err)
	}
	if typed.DefaultSampleType != "wall" {
		t.Errorf("profile?type=wall: default sample type %q", typed.DefaultSampleType)
	}
	var series struct {
		Unit   string `json:"unit"`
		Series []struct {
			Points [][2]float64 `json:"points"`
		} `json:"series"`
	}
	if err := json.Unmarshal(gunzipIfNeeded(t, get("/api/v1/series?from=-1h&type=wall")), &series); err != nil {
		t.Fatal(err)
	}
	var wallSeconds float64
	for _, s := range series.Series {
		for _, pt := range s.Points {
			wallSeconds += pt[1]
		}
	}
	if series.Unit != "nanoseconds/s" || wallSeconds <= 0 {
		t.Errorf("series?type=wall: unit %q, sum %g", series.Unit, wallSeconds)
	}
	if resp, err := http.Get(srv.URL + "/api/v1/profile?type=bogus"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("profile?type=bogus: %v %v", resp.Status, err)
	}

	goTool := testenv.RequireGoTool(t)
	file := filepath.Join(t.TempDir(), "wall.pb.gz")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goTool, "tool", "pprof", "-top", "-sample_index=wall", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	// sleep waits 70% of the wall time and never runs.
	if !strings.Contains(string(out), "sleep") || !strings.Contains(string(out), "70.00%") {
		t.Errorf("go tool pprof -sample_index=wall does not show sleep at 70%%:\n%s", out)
	}
}

func gunzipIfNeeded(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b
	}
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
