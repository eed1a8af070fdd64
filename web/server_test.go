package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/testenv"

	"github.com/ember-profiler/ember/internal/profiletest"
)

// serve starts ts on a real loopback listener and returns its base URL; the
// server stops, and Serve's error is checked, when the test ends.
func serve(t *testing.T, ts *testServer) string {
	t.Helper()
	l, err := netListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return "http://" + l.Addr().String()
}

func TestServeOnLoopback(t *testing.T) {
	ts := newTestServer(t, nil)
	base := serve(t, ts)
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	// A real loopback connection gets the DNS-rebinding check.
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/labels", nil)
	req.Host = "attacker.example"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "DNS rebinding") {
		t.Errorf("rebinding Host: %d %s", resp.StatusCode, body)
	}
	// The selector as a user types it in a shell, unescaped.
	resp, err = http.Get(base + `/api/v1/profile?from=-1h&query={comm="app",pid!="1"}`)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(p.Sample) != 4 {
		t.Fatalf("profile: %d %v", resp.StatusCode, err)
	}
	if calls := ts.store.calls(); calls[len(calls)-1].selector != `{comm="app",pid!="1"}` {
		t.Errorf("selector arrived as %q", calls[len(calls)-1].selector)
	}
}

// TestGoToolPprof runs `go tool pprof -top` on the API's URLs, as a user
// would: the stored profile and a live one.
func TestGoToolPprof(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if testenv.InCI() {
			t.Fatal("go is not in PATH")
		}
		t.Skip("go is not in PATH")
	}
	if testing.Short() {
		t.Skip("runs go tool pprof")
	}
	ts := newTestServer(t, nil)
	base := serve(t, ts)
	tmp := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(goTool, append([]string{"tool", "pprof"}, args...)...)
		cmd.Dir = tmp
		// pprof saves what it fetches under $PPROF_TMPDIR (else $HOME/pprof).
		cmd.Env = append(os.Environ(), "PPROF_TMPDIR="+tmp, "GOFLAGS=")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("go tool pprof %s: %v", strings.Join(args, " "), time.Since(start))
		if err != nil {
			t.Fatalf("go tool pprof %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// As typed in a shell: unescaped, with a space after the comma.
	out := run("-top", base+`/api/v1/profile?from=-1h&query={comm="app", pid!="1"}`)
	// hot has the most flat time: 60 of 100 ns.
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "60ns 60.00% 60.00% 60ns 60.00% hot") {
		t.Errorf("pprof -top does not show hot first:\n%s", out)
	}
	if calls := ts.store.calls(); calls[0].selector != `{comm="app", pid!="1"}` {
		t.Errorf("selector arrived as %q", calls[0].selector)
	}
	out = run("-top", "-seconds", "2", base+"/debug/pprof/profile?query="+url.QueryEscape(`{pid="1"}`))
	if !strings.Contains(out, " hot") {
		t.Errorf("live profile: pprof -top does not show hot:\n%s", out)
	}
	if ts.live.asked[0] != 2*time.Second || ts.live.sels[0] != `{pid="1"}` {
		t.Errorf("live profiler asked %v %q", ts.live.asked, ts.live.sels)
	}
}

func TestShutdownStopsLongRequests(t *testing.T) {
	blocking := &blockingLive{entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := newTestServer(t, func(o *Options) {
		o.Live = blocking
		o.Limits.ShutdownTimeout = 100 * time.Millisecond
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, l) }()
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/debug/pprof/profile?seconds=300")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-blocking.entered
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return while a live profile ran")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	<-got // the client sees its connection end one way or another
}

func TestListenAndServe(t *testing.T) {
	ts := newTestServer(t, nil)
	if err := ts.ListenAndServe(context.Background(), "127.0.0.1:0", "cert.pem", ""); err == nil {
		t.Error("certificate without key: no error")
	}
	if err := ts.ListenAndServe(context.Background(), "256.0.0.1:0", "", ""); err == nil || !strings.Contains(err.Error(), "256.0.0.1") {
		t.Errorf("bad address: %v", err)
	}
	// The host given is accepted as a Host header on loopback.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.ListenAndServe(ctx, "localhost:0", "", "") }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
	if !ts.hostAllowed("localhost") {
		t.Error("the listen host is not allowed")
	}
}

func netListenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// sleepingLive takes the whole duration it is asked for, as the daemon's does.
type sleepingLive struct{}

func (sleepingLive) Profile(ctx context.Context, d time.Duration, sel string) (*profile.Profile, error) {
	select {
	case <-time.After(d):
		return profiletest.Fixture(1), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestServerTimeouts checks the timeouts on a real connection: a client
// that never finishes its headers is cut off, and a live profile longer
// than the write timeout still arrives whole, because it extends its own.
func TestServerTimeouts(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Live = sleepingLive{}
		o.Limits.ReadHeaderTimeout = 200 * time.Millisecond
		o.Limits.WriteTimeout = 300 * time.Millisecond
	})
	base := serve(t, ts)

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n")); err != nil { // no final CRLF
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			break // closed by the server (or our 5 s deadline, checked below)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a client stuck in its headers kept the connection for %v", took)
	}

	resp, err := http.Get(base + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p, err := profile.Parse(resp.Body)
	if err != nil || resp.StatusCode != 200 || len(p.Sample) != 4 {
		t.Errorf("1 s live profile past a 300 ms write timeout: status %d, %v", resp.StatusCode, err)
	}
}
