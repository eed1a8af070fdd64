package main

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ember-profiler/ember/export"
	"github.com/ember-profiler/ember/export/exporttest"
	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/storage"
)

// The daemon profiles a known workload with --export to Pyroscope (push
// and /ingest) and OTLP receivers (the backends' own decoders, or a parser
// of what Pyroscope's /ingest handler parses): every stored interval
// reaches each, and what they decoded for the workload is what the store holds,
// sample for sample, with the expected labels and profile type.
func TestDaemonExportsWhatItStores(t *testing.T) {
	testenv.RequireBPF(t)
	hot := exec.Command("../../testdata/hotspot/hotspot", untilKilled)
	if err := hot.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hot.Process.Kill(); hot.Wait() })
	testenv.Stop(t, hot.Process.Pid)
	pyro, srv := exporttest.StartPyroscope(t, false, nil)
	otlp, addr := exporttest.StartOTLP(t)
	ingest, ingestSrv := exporttest.StartPyroscopeIngest(t, false, nil)

	dir := t.TempDir()
	cfg := testDaemonConfig(dir)
	// Other programs named hotspot may run on the host: the pid tells
	// this one's samples, a label for Pyroscope, in the service name for
	// OTLP.
	cfg.Export = []string{"pyroscope=" + srv.URL + ",tenant=fleet,pid=true", "otlp=http://" + addr + ",service-name={comm}-{pid}",
		"pyroscope-ingest=" + ingestSrv.URL + ",tenant=fleet,pid=true"}
	pid := strconv.Itoa(hot.Process.Pid)
	// On a loaded host the first intervals are named slowly (every file
	// parsed cold): give the last one time to be stored and exported.
	cfg.ShutdownDeadline = 2 * time.Minute
	err := whileSampling(t, func(ctx context.Context) error { return runDaemon(ctx, cfg, slog.Default()) },
		func() { runFor(t, hot.Process.Pid, 3*time.Second) })
	if err != nil {
		t.Fatalf("daemon: %v", err)
	}

	store, err := storage.Open(storage.Options{Dir: dir, MinFreeDiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	refs, _ := store.IntervalsAfter(0, 1000)
	if len(refs) == 0 {
		t.Fatal("nothing stored")
	}
	stored := map[int64]bool{}
	local := map[string]int64{} // the workload's cpu by stack, from the store
	for _, ref := range refs {
		p, err := store.ReadInterval(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		stored[p.TimeNanos] = true
		for _, s := range p.Sample {
			if len(s.NumLabel["pid"]) == 1 && s.NumLabel["pid"][0] == int64(hot.Process.Pid) {
				local[exporttest.PprofStack(s)] += s.Value[1]
			}
		}
	}
	exe, _ := filepath.Abs("../../testdata/hotspot/hotspot")
	for _, c := range []struct {
		name  string
		reqs  []exporttest.Request
		key   string // the label that holds the pid
		want  string
		check func(t *testing.T, r exporttest.Request, s exporttest.Sample)
	}{
		{"pyroscope", pyro.Requests(), "pid", pid, func(t *testing.T, r exporttest.Request, s exporttest.Sample) {
			if want := []string{"samples/count", "cpu/nanoseconds", "cpu/nanoseconds"}; !slices.Equal(r.Types, want) {
				t.Fatalf("types %v, want %v", r.Types, want)
			}
			if r.Header.Get("X-Scope-OrgID") != "fleet" {
				t.Fatalf("tenant %q", r.Header.Get("X-Scope-OrgID"))
			}
			l := s.Labels
			if l["__name__"] != "process_cpu" || l["host"] != "test-host" || l["exe"] != exe || l["comm"] != "hotspot" || l[export.LabelServiceName] != "hotspot" {
				t.Fatalf("labels %v", l)
			}
		}},
		{"pyroscope-ingest", ingest.Requests(), "pid", pid, func(t *testing.T, r exporttest.Request, s exporttest.Sample) {
			if want := []string{"samples/count", "cpu/nanoseconds", "cpu/nanoseconds"}; !slices.Equal(r.Types, want) {
				t.Fatalf("types %v, want %v", r.Types, want)
			}
			if r.Header.Get("X-Scope-OrgID") != "fleet" || !r.Ingest.Multipart {
				t.Fatalf("tenant %q, multipart %v", r.Header.Get("X-Scope-OrgID"), r.Ingest.Multipart)
			}
			l := s.Labels
			if l["__name__"] != "process_cpu" || l["host"] != "test-host" || l["exe"] != exe || l["comm"] != "hotspot" || l[export.LabelServiceName] != "hotspot" {
				t.Fatalf("labels %v", l)
			}
		}},
		{"otlp", otlp.Requests(), "service.name", "hotspot-" + pid, func(t *testing.T, _ exporttest.Request, s exporttest.Sample) {
			l := s.Labels
			if l["host.name"] != "test-host" || l["process.executable.path"] != exe || l["process.pid"] != "" {
				t.Fatalf("attributes %v", l)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := map[string]int64{}
			sent := map[int64]bool{}
			reqs, repeats := exporttest.Unique(c.reqs)
			t.Logf("%d requests, %d of them repeats under the same IDs", len(c.reqs), repeats)
			for _, r := range reqs {
				sent[r.TimeNanos] = true
				for _, s := range r.Samples {
					if s.Labels[c.key] == c.want {
						got[s.Stack] += s.CPU
						c.check(t, r, s)
					}
				}
			}
			for ts := range stored {
				if !sent[ts] {
					t.Errorf("the interval at %s was stored but not exported", time.Unix(0, ts).UTC())
				}
			}
			if d := exporttest.DiffMaps(got, local); d != "" {
				t.Errorf("the workload's profile differs from the store's:\n%s", d)
			}
			if top, want := topLeaves(got), topLeaves(local); !slices.Equal(top, want) || len(top) == 0 {
				t.Errorf("top functions %v, the store's %v", top, want)
			}
		})
	}
}

// topLeaves is the three leaf functions with the most cpu, most first.
func topLeaves(byStack map[string]int64) []string {
	byLeaf := map[string]int64{}
	for stack, cpu := range byStack {
		byLeaf[stack[strings.LastIndexByte(stack, ';')+1:]] += cpu
	}
	var leaves []string
	for l := range byLeaf {
		leaves = append(leaves, l)
	}
	slices.SortFunc(leaves, func(a, b string) int {
		if byLeaf[a] != byLeaf[b] {
			return int(byLeaf[b] - byLeaf[a])
		}
		return strings.Compare(a, b)
	})
	return leaves[:min(3, len(leaves))]
}

// A daemon killed with -9 while its exporter has a request in flight loses
// nothing: after a restart every stored interval has reached the backend,
// and whatever was sent twice was sent under the same IDs.
func TestDaemonKilledMidExport(t *testing.T) {
	testenv.RequireBPF(t)
	pyro, srv := exporttest.StartPyroscope(t, false, nil)
	pyro.Fail = func(int) error {
		time.Sleep(200 * time.Millisecond) // so that a kill often finds a request in flight
		return nil
	}
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd, _ := startDaemonProcess(t, "--data-dir", dir, "--interval", "1s", "--export", "pyroscope="+srv.URL+",timeout=10s")
		return cmd
	}
	intervals := func() int {
		seen := map[int64]bool{}
		for _, r := range pyro.Requests() {
			seen[r.TimeNanos] = true
		}
		return len(seen)
	}
	waitIntervals := func(n int) {
		deadline := time.Now().Add(testenv.CPUTimeout)
		for intervals() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the backend has %d intervals, want %d", intervals(), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	d := start()
	waitIntervals(3)
	d.Process.Kill()
	d.Wait()
	atKill := intervals()
	d = start()
	waitIntervals(atKill + 3)
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}

	store, err := storage.Open(storage.Options{Dir: dir, MinFreeDiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	idsOf := map[int64]string{}
	for _, r := range pyro.Requests() {
		ids := strings.Join(slices.Sorted(slices.Values(r.IDs)), ",")
		if prev, ok := idsOf[r.TimeNanos]; ok && prev != ids {
			t.Errorf("the interval at %s was sent twice under different IDs", time.Unix(0, r.TimeNanos).UTC())
		}
		idsOf[r.TimeNanos] = ids
	}
	refs, _ := store.IntervalsAfter(0, 100000)
	for _, ref := range refs {
		p, err := store.ReadInterval(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := idsOf[p.TimeNanos]; !ok && len(p.Sample) > 0 {
			t.Errorf("the interval at %s was stored but never reached the backend", time.Unix(0, p.TimeNanos).UTC())
		}
	}
	_, repeats := exporttest.Unique(pyro.Requests())
	t.Logf("%d intervals stored, %d requests, %d of them repeats", len(refs), len(pyro.Requests()), repeats)
}
