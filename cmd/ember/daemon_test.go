package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/storage"
)

func testDaemonConfig(dir string) daemonConfig {
	cfg := defaultDaemonConfig()
	cfg.DataDir = dir
	cfg.Interval = 2 * time.Second
	cfg.DrainInterval = 500 * time.Millisecond
	cfg.MaxDisk = 64 << 20
	cfg.MinFreeDisk = 1 << 20
	cfg.Labels = map[string]string{"host": "test-host"}
	cfg.Listen = "127.0.0.1:0"
	return cfg
}

// queryStore opens the store read-side and returns the merged profile of
// the last hour matching selector.
func queryStore(t *testing.T, dir, selector string) *profile.Profile {
	t.Helper()
	store, err := storage.Open(storage.Options{Dir: dir, MinFreeDiskBytes: 1 << 20})
	if err != nil {
		t.Fatalf("reopen the store: %v", err)
	}
	defer store.Close()
	sel, err := storage.ParseSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p, err := store.Query(context.Background(), storage.ProfileQuery{From: now.Add(-time.Hour), To: now.Add(time.Minute), Selector: sel})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return p
}

// The daemon samples a known workload, stores it, and the store answers
// with the right split and labels.
func TestDaemonStoresProfiles(t *testing.T) {
	testenv.RequireBPF(t)
	hot := exec.Command("../../testdata/hotspot/hotspot", untilKilled)
	if err := hot.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hot.Process.Kill(); hot.Wait() })
	testenv.Stop(t, hot.Process.Pid)

	dir := t.TempDir()
	var cpu time.Duration
	err := whileSampling(t, func(ctx context.Context) error { return runDaemon(ctx, testDaemonConfig(dir), slog.Default()) },
		func() { cpu, _ = runFor(t, hot.Process.Pid, 5*time.Second) })
	if err != nil {
		t.Fatalf("daemon: %v", err)
	}

	p := queryStore(t, dir, `{comm="hotspot", pid="`+strconv.Itoa(hot.Process.Pid)+`"}`)
	// Everything sampled was stored, the interval in progress at the stop too.
	if err := testenv.SamplesAgree(total(p), time.Duration(p.Period), cpu); err != nil {
		t.Error(err)
	}
	checkSplit(t, p, []leafWant{
		{"alpha", 0.5, []string{"main", "run", "alpha"}},
		{"beta", 0.3, []string{"main", "run", "work_b", "beta"}},
		{"gamma", 0.2, []string{"main", "run", "gamma"}},
	})
	exe, _ := filepath.Abs("../../testdata/hotspot/hotspot")
	for _, s := range p.Sample {
		if got := s.Label["exe"]; len(got) != 1 || got[0] != exe {
			t.Fatalf("exe label %v, want %s", got, exe)
		}
		if got := s.Label["host"]; len(got) != 1 || got[0] != "test-host" {
			t.Fatalf("host label %v", got)
		}
	}
	if other := queryStore(t, dir, `{comm!="hotspot"}`); len(other.Sample) == 0 {
		t.Error("nothing else stored from a whole-host daemon")
	}
}

// SIGTERM flushes the interval in progress and closes the store cleanly; a
// restart continues on the same data; kill -9 loses at most the interval in
// flight and the store reopens.
// startDaemonProcess runs `ember daemon` (this test binary as main) with
// the test setup's flags and then args, kills it at cleanup, and logs its
// output if the test failed.
func startDaemonProcess(t *testing.T, args ...string) (*exec.Cmd, *daemonOutput) {
	t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command(self, append([]string{"daemon", "--drain-interval", "500ms", "--listen", "127.0.0.1:0",
		"--min-free-disk", "1MiB", "--max-disk", "64MiB"}, args...)...)
	cmd.Env = append(os.Environ(), "EMBER_TEST_RUN_MAIN=1")
	out := &daemonOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon output:\n%s", out.String())
		}
	})
	return cmd, out
}

func TestDaemonLifecycle(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd, out := startDaemonProcess(t, "--data-dir", dir, "--interval", "1h", "--log-level", "info")
		if err := testenv.WaitSampling(context.Background(), cmd.Process.Pid); err != nil {
			t.Fatalf("%v; daemon output:\n%s", err, out.String())
		}
		return cmd
	}
	hot := exec.Command("../../testdata/hotspot/hotspot", untilKilled)
	if err := hot.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hot.Process.Kill(); hot.Wait() })
	testenv.Stop(t, hot.Process.Pid)
	// This hotspot only: other tests on the host may run one too.
	sel := `{comm="hotspot", pid="` + strconv.Itoa(hot.Process.Pid) + `"}`

	// With a 1 h interval nothing is stored before shutdown: what is there
	// after SIGTERM was flushed by it, all of it.
	d := start()
	cpu, _ := runFor(t, hot.Process.Pid, 2*time.Second)
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
	// About 250 on an idle machine; far fewer when other work shares the CPUs.
	first := total(queryStore(t, dir, sel))
	if err := testenv.SamplesAgree(first, time.Second/99, cpu); err != nil {
		t.Fatalf("stored after SIGTERM: %v", err)
	}

	d = start()
	cpu, _ = runFor(t, hot.Process.Pid, 2*time.Second)
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Fatalf("restarted daemon exit: %v", err)
	}
	second := total(queryStore(t, dir, sel))
	if err := testenv.SamplesAgree(second-first, time.Second/99, cpu); err != nil {
		t.Errorf("after a restart the store holds %d samples, before %d: the restart did not add to the same data: %v", second, first, err)
	}

	d = start()
	runFor(t, hot.Process.Pid, time.Second)
	d.Process.Kill()
	d.Wait()
	if after := total(queryStore(t, dir, sel)); after < second {
		t.Errorf("after kill -9 the store holds %d samples, %d before", after, second)
	}
}

// daemonOutput collects a daemon's output, written and read from different goroutines.
type daemonOutput struct {
	mu   sync.Mutex
	text strings.Builder
}

func (o *daemonOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.text.Write(b)
}

func (o *daemonOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.text.String()
}

func total(p *profile.Profile) int64 {
	var n int64
	for _, s := range p.Sample {
		n += s.Value[0]
	}
	return n
}

// freePort returns a loopback address nobody listens on (for a moment).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body
}

// The daemon serves what it stores: go tool pprof reads the history over
// HTTP, a live profile comes from the running sampler, metrics count it.
func TestDaemonHTTP(t *testing.T) {
	testenv.RequireBPF(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	hot := exec.Command("../../testdata/hotspot/hotspot", untilKilled)
	if err := hot.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hot.Process.Kill(); hot.Wait() })
	testenv.Stop(t, hot.Process.Pid)

	cfg := testDaemonConfig(t.TempDir())
	cfg.Listen = freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, cfg, slog.Default()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	base := "http://" + cfg.Listen
	if err := testenv.WaitSampling(context.Background(), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	cpu, share := runFor(t, hot.Process.Pid, 5*time.Second)
	// The interval in progress when the hotspot stopped, and the next.
	waitIntervals(t, base, 2)

	httpGet(t, base+"/healthz")
	query := url.QueryEscape(`{comm="hotspot", pid="` + strconv.Itoa(hot.Process.Pid) + `"}`)
	profileURL := base + "/api/v1/profile?from=-5m&query=" + query
	p, err := profile.ParseData(httpGet(t, profileURL))
	if err != nil {
		t.Fatalf("parse the stored profile: %v", err)
	}
	if err := testenv.SamplesAgree(total(p), time.Duration(p.Period), cpu); err != nil {
		t.Errorf("stored: %v", err)
	}
	checkSplit(t, p, []leafWant{
		{"alpha", 0.5, []string{"main", "run", "alpha"}},
		{"beta", 0.3, []string{"main", "run", "work_b", "beta"}},
		{"gamma", 0.2, []string{"main", "run", "gamma"}},
	})

	top, err := exec.Command(goTool, "tool", "pprof", "-top", profileURL).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "alpha") || !strings.Contains(string(top), "gamma") {
		t.Errorf("go tool pprof -top %s: %v\n%s", profileURL, err, top)
	}

	// Long enough for the hotspot to get about 300 ms of CPU: 30 samples.
	secs := secondsFor(300*time.Millisecond, share, 2)
	testenv.Continue(t, hot.Process.Pid)
	live, err := profile.ParseData(httpGet(t, base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs)+"&query="+query))
	if err != nil {
		t.Fatalf("parse the live profile: %v", err)
	}
	if n := total(live); n == 0 {
		t.Errorf("no samples of hotspot in a %d s live profile", secs)
	}

	metrics := string(httpGet(t, base+"/metrics"))
	for _, want := range []string{`ember_samples_total{outcome="recorded"}`, "ember_store_disk_bytes", `ember_intervals_total{outcome="stored"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if body := httpGet(t, base+"/api/v1/flamegraph?from=-5m&query="+query); !strings.Contains(string(body), "alpha") {
		t.Errorf("flame graph lacks alpha: %.300s", body)
	}
}

// Stopping takes less than --shutdown-timeout even with a live profile in
// flight, and still stores the interval in progress.
func TestDaemonStopsWithinShutdownTimeout(t *testing.T) {
	testenv.RequireBPF(t)
	hot := exec.Command("../../testdata/hotspot/hotspot", "30")
	if err := hot.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hot.Process.Kill(); hot.Wait() })

	cfg := testDaemonConfig(t.TempDir())
	cfg.Interval = time.Hour // only the flush at stop stores anything
	cfg.Listen = freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, cfg, slog.Default()) }()
	base := "http://" + cfg.Listen
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not answer /healthz within a minute")
		}
	}
	live := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/debug/pprof/profile?seconds=120")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		live <- err
	}()
	time.Sleep(3 * time.Second)

	stopped := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if took := time.Since(stopped); took > cfg.ShutdownDeadline {
		t.Errorf("stopping took %s, more than the %s shutdown timeout", took.Round(time.Millisecond), cfg.ShutdownDeadline)
	}
	<-live
	if n := total(queryStore(t, cfg.DataDir, `{comm="hotspot"}`)); n == 0 {
		t.Error("nothing of the interval in progress was stored at stop")
	}
}
