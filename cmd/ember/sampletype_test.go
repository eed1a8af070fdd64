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
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/web"
)

// wallProfile is an interval with a second sample type beside CPU, as the
// off-CPU and wall-clock issues will write: two stacks, one that runs and
// one that waits.
func wallProfile(start time.Time) *profile.Profile {
	fn := func(id uint64, name string) *profile.Function {
		return &profile.Function{ID: id, Name: name, SystemName: name}
	}
	run, wait, main := fn(1, "spin"), fn(2, "sleep"), fn(3, "main")
	loc := func(id uint64, f *profile.Function) *profile.Location {
		return &profile.Location{ID: id, Line: []profile.Line{{Function: f}}}
	}
	lRun, lWait, lMain := loc(1, run), loc(2, wait), loc(3, main)
	labels := map[string][]string{schema.LabelComm: {"app"}}
	pid := map[string][]int64{schema.LabelPID: {42}}
	return &profile.Profile{
		SampleType:    schema.ValueTypes(schema.Samples, schema.CPU, schema.Wall),
		PeriodType:    &profile.ValueType{Type: schema.PeriodType.Type, Unit: schema.PeriodType.Unit},
		Period:        10_000_000,
		TimeNanos:     start.UnixNano(),
		DurationNanos: int64(10 * time.Second),
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lRun, lMain}, Value: []int64{3, 30_000_000, 30_000_000}, Label: labels, NumLabel: pid},
			{Location: []*profile.Location{lWait, lMain}, Value: []int64{0, 0, 70_000_000}, Label: labels, NumLabel: pid},
		},
		Location: []*profile.Location{lRun, lWait, lMain},
		Function: []*profile.Function{run, wait, main},
	}
}

// A second sample type travels from an appended profile through the store
// and the HTTP API into a file `go tool pprof` reads, and the flame graph
// can be asked for it.
func TestWallSampleTypeThroughAPI(t *testing.T) {
	store, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	start := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	for i := range 3 {
		if err := store.Append(context.Background(), wallProfile(start.Add(time.Duration(i)*10*time.Second)), nil); err != nil {
			t.Fatal(err)
		}
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
	if cpu != 3*30_000_000 || wall != 3*100_000_000 {
		t.Errorf("cpu %d and wall %d nanoseconds, want %d and %d", cpu, wall, 3*30_000_000, 3*100_000_000)
	}

	var fg struct {
		SampleType string `json:"sample_type"`
		Total      int64  `json:"total"`
	}
	if err := json.Unmarshal(gunzipIfNeeded(t, get("/api/v1/flamegraph?from=-1h&sample_type=wall")), &fg); err != nil {
		t.Fatal(err)
	}
	if fg.Total != 3*100_000_000 {
		t.Errorf("flame graph of wall time: total %d (sample type %q), want %d", fg.Total, fg.SampleType, 3*100_000_000)
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
