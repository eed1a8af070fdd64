package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuthToken(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.AuthToken = "s3cret" })
	for _, path := range []string{"/api/v1/labels", "/metrics", "/readyz", "/debug/pprof/profile?seconds=1", "/api/v1/nothing"} {
		for _, header := range []string{"", "Authorization: Bearer wrong", "Authorization: Bearer s3cret-and-more",
			"Authorization: Basic czNjcmV0", "Authorization: s3cret"} {
			var rec *httptest.ResponseRecorder
			if header == "" {
				rec = ts.get(path)
			} else {
				rec = ts.get(path, header)
			}
			wantError(t, rec, http.StatusUnauthorized, "")
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %q: no WWW-Authenticate", path, header)
			}
		}
	}
	for _, path := range []string{"/api/v1/labels", "/metrics", "/readyz", "/debug/pprof/profile?seconds=1"} {
		if rec := ts.get(path, "Authorization: Bearer s3cret"); rec.Code != http.StatusOK {
			t.Errorf("%s with the token: %d %s", path, rec.Code, rec.Body)
		}
		if rec := ts.get(path, "Authorization: bearer s3cret"); rec.Code != http.StatusOK {
			t.Errorf("%s with a lower-case scheme: %d", path, rec.Code)
		}
	}
	if rec := ts.get("/healthz"); rec.Code != http.StatusOK {
		t.Errorf("/healthz without a token: %d", rec.Code)
	}
}

func TestHostCheck(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.AllowedHosts = []string{"Profiler.Internal."} })
	get := func(local, host string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/labels", nil)
		if local != "" {
			req = onLoopback(req, local)
		}
		req.Host = host
		return ts.do(req)
	}
	for _, host := range []string{"localhost", "localhost:7070", "LOCALHOST.:7070", "127.0.0.1", "127.0.0.1:7070",
		"[::1]:7070", "[::1]", "ui.localhost:8080", "10.1.2.3:7070", "profiler.internal:7070", ""} {
		if rec := get("127.0.0.1:7070", host); rec.Code != http.StatusOK {
			t.Errorf("Host %q on loopback: %d %s", host, rec.Code, rec.Body)
		}
	}
	for _, host := range []string{"evil.example", "evil.example:7070", "localhost.evil.example", "127.0.0.1.nip.io:7070"} {
		for _, local := range []string{"127.0.0.1:7070", "[::1]:7070"} {
			body := wantError(t, get(local, host), http.StatusForbidden, "")
			if !strings.Contains(body.Error, "DNS rebinding") {
				t.Errorf("error %q", body.Error)
			}
		}
	}
	// Off loopback, any Host: the token is the guard there.
	if rec := get("10.0.0.5:7070", "evil.example"); rec.Code != http.StatusOK {
		t.Errorf("off loopback: %d", rec.Code)
	}
	// /healthz is checked too: a rebinding page learns nothing.
	req := onLoopback(httptest.NewRequest(http.MethodGet, "/healthz", nil), "127.0.0.1:7070")
	req.Host = "evil.example"
	wantError(t, ts.do(req), http.StatusForbidden, "")
}

func TestConcurrencyLimit(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Limits.MaxConcurrentQueries = 1
		o.Limits.QueueWait = 20 * time.Millisecond
	})
	ts.store.block = make(chan struct{})
	ts.store.entered = make(chan struct{}, 1)
	var wg sync.WaitGroup
	var first *httptest.ResponseRecorder
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = ts.get("/api/v1/flamegraph")
	}()
	<-ts.store.entered
	for _, path := range []string{"/api/v1/profile", "/api/v1/flamegraph", "/api/v1/diff", "/api/v1/series"} {
		rec := ts.get(path)
		wantError(t, rec, http.StatusTooManyRequests, "")
		if rec.Header().Get("Retry-After") != "1" {
			t.Errorf("%s: Retry-After %q", path, rec.Header().Get("Retry-After"))
		}
	}
	// Labels and health are not expensive queries.
	if rec := ts.get("/api/v1/labels"); rec.Code != http.StatusOK {
		t.Errorf("labels while full: %d", rec.Code)
	}
	metrics := ts.get("/metrics").Body.String()
	for _, want := range []string{`ember_http_queries_in_flight{kind="query"} 1`, `ember_http_queries_rejected_total{kind="query"} 4`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	close(ts.store.block)
	wg.Wait()
	if first.Code != http.StatusOK {
		t.Errorf("the query that held the slot: %d %s", first.Code, first.Body)
	}
	if rec := ts.get("/api/v1/flamegraph"); rec.Code != http.StatusOK {
		t.Errorf("after release: %d", rec.Code)
	}
}

func TestLiveConcurrencyLimit(t *testing.T) {
	blocking := &blockingLive{entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := newTestServer(t, func(o *Options) {
		o.Live = blocking
		o.Limits.MaxLiveProfiles = 1
	})
	done := make(chan int)
	go func() { done <- ts.get("/debug/pprof/profile?seconds=1").Code }()
	<-blocking.entered
	wantError(t, ts.get("/debug/pprof/profile?seconds=1"), http.StatusTooManyRequests, "")
	// Live profiles do not take query slots.
	if rec := ts.get("/api/v1/flamegraph"); rec.Code != http.StatusOK {
		t.Errorf("flame graph during a live profile: %d", rec.Code)
	}
	close(blocking.release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("live profile: %d", code)
	}
}

func TestRequestTimeout(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Limits.RequestTimeout = 50 * time.Millisecond
		o.Limits.MaxConcurrentQueries = 1
		o.Limits.QueueWait = -1
	})
	// A store that honours its context.
	ts.store.block = make(chan struct{})
	start := time.Now()
	body := wantError(t, ts.get("/api/v1/profile"), http.StatusServiceUnavailable, "")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("timed out after %v", took)
	}
	if !strings.Contains(body.Error, "time limit") {
		t.Errorf("error %q", body.Error)
	}
	// A store that ignores it: the client still gets its 503 on time, and
	// the stuck query keeps its slot until it returns.
	waitQueriesIdle(t, ts)
	ts.store.ignoreCtx = true
	start = time.Now()
	wantError(t, ts.get("/api/v1/flamegraph"), http.StatusServiceUnavailable, "")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("timed out after %v", took)
	}
	wantError(t, ts.get("/api/v1/flamegraph"), http.StatusTooManyRequests, "")
	close(ts.store.block)
	deadline := time.Now().Add(5 * time.Second)
	for ts.get("/api/v1/flamegraph").Code != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the slot was never released")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPanicRecovered(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.store.panics = true
	// In a query goroutine.
	body := wantError(t, ts.get("/api/v1/flamegraph"), http.StatusInternalServerError, "")
	if body.Error != "internal error" {
		t.Errorf("error %q leaks detail", body.Error)
	}
	// On the request goroutine.
	ts2 := newTestServer(t, func(o *Options) { o.Ready = func() error { panic("ready: boom") } })
	wantError(t, ts2.get("/readyz"), http.StatusInternalServerError, "")
	for _, log := range []string{ts.log.String(), ts2.log.String()} {
		if n := strings.Count(log, "http request failed"); n != 1 || !strings.Contains(log, "boom") || !strings.Contains(log, "goroutine") {
			t.Errorf("want the panic and its stack logged once, got:\n%s", log)
		}
	}
	// The server still works.
	ts.store.panics = false
	if rec := ts.get("/api/v1/flamegraph"); rec.Code != http.StatusOK {
		t.Errorf("after a panic: %d", rec.Code)
	}
}

// waitQueriesIdle waits until no query holds a slot. Taking every slot
// orders this after the releases (a channel send after the receives).
func waitQueriesIdle(t *testing.T, ts *testServer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for taken := 0; taken < cap(ts.queries); {
		select {
		case ts.queries <- struct{}{}:
			taken++
		default:
			if time.Now().After(deadline) {
				t.Fatal("queries never finished")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range cap(ts.queries) {
		<-ts.queries
	}
}

func TestQueueWait(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Limits.MaxConcurrentQueries = 1
		o.Limits.QueueWait = 10 * time.Second
	})
	ts.store.block = make(chan struct{})
	ts.store.entered = make(chan struct{}, 2)
	codes := make(chan int, 2)
	go func() { codes <- ts.get("/api/v1/flamegraph").Code }()
	<-ts.store.entered
	go func() { codes <- ts.get("/api/v1/series").Code }() // waits for the slot
	time.Sleep(20 * time.Millisecond)
	close(ts.store.block)
	for range 2 {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("status %d, want both queries answered", code)
		}
	}
}
