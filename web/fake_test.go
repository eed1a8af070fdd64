package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/profiletest"
)

// testNow is the fake clock of every handler test.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fakeStore answers from fixtures. Selector "{}" or "" is the fixture at
// scale 1, {comm="base"} a different one; anything not starting with "{" is
// a bad selector. block, when set, holds Profile until it is closed
// (ignoring ctx when ignoreCtx), after signalling entered.
type fakeStore struct {
	mu       sync.Mutex
	profiles []profileCall

	block     chan struct{}
	entered   chan struct{}
	ignoreCtx bool
	panics    bool

	series      []Series
	seriesErr   error
	seriesCalls []seriesCall
	names       []string
	values      map[string][]string
}

type profileCall struct {
	from, to time.Time
	selector string
}

type seriesCall struct {
	from, to        time.Time
	step            time.Duration
	selector, group string
	limit           int
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		names:  []string{"pid", "comm", "exe"},
		values: map[string][]string{"comm": {"nginx", "app", "nginx"}, "pid": {"2", "1"}},
	}
}

func checkSelector(sel string) error {
	if sel != "" && !strings.HasPrefix(sel, "{") {
		return fmt.Errorf("%w: 1:1: expected '{', found %q", ErrBadSelector, sel[:1])
	}
	return nil
}

func (f *fakeStore) Profile(ctx context.Context, from, to time.Time, sel string) (*profile.Profile, error) {
	f.mu.Lock()
	f.profiles = append(f.profiles, profileCall{from, to, sel})
	f.mu.Unlock()
	if f.panics {
		panic("fake store: boom")
	}
	if err := checkSelector(sel); err != nil {
		return nil, err
	}
	if f.block != nil {
		if f.entered != nil {
			f.entered <- struct{}{}
		}
		if f.ignoreCtx {
			<-f.block
		} else {
			select {
			case <-f.block:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	if sel == `{comm="base"}` {
		b := profiletest.NewBuilder()
		b.Add(50, "hot", "work", "main")
		b.Add(50, "idle", "main")
		b.Add(100, "gone", "main")
		return b.P, nil
	}
	if sel == `{comm="none"}` {
		return nil, nil
	}
	return profiletest.Fixture(1), nil
}

// WriteProfile encodes what Profile returns, as a store would; nothing for
// no profile.
func (f *fakeStore) WriteProfile(ctx context.Context, from, to time.Time, sel, _ string, w io.Writer) error {
	p, err := f.Profile(ctx, from, to, sel)
	if err != nil || p == nil {
		return err
	}
	return p.WriteUncompressed(w)
}

func (f *fakeStore) calls() []profileCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]profileCall(nil), f.profiles...)
}

func (f *fakeStore) Series(ctx context.Context, from, to time.Time, step time.Duration, sel, groupBy, _ string, limit int) ([]Series, error) {
	f.mu.Lock()
	f.seriesCalls = append(f.seriesCalls, seriesCall{from, to, step, sel, groupBy, limit})
	f.mu.Unlock()
	if err := checkSelector(sel); err != nil {
		return nil, err
	}
	return f.series, f.seriesErr
}

func (f *fakeStore) LabelNames(ctx context.Context, from, to time.Time) ([]string, error) {
	return f.names, nil
}

func (f *fakeStore) LabelValues(ctx context.Context, name string, from, to time.Time) ([]string, error) {
	return f.values[name], nil
}

// fakeLive records the durations and selectors it is asked for and answers
// with the fixture at once.
type fakeLive struct {
	mu    sync.Mutex
	asked []time.Duration
	sels  []string
}

func (l *fakeLive) Profile(ctx context.Context, d time.Duration, sel string) (*profile.Profile, error) {
	l.mu.Lock()
	l.asked = append(l.asked, d)
	l.sels = append(l.sels, sel)
	l.mu.Unlock()
	if err := checkSelector(sel); err != nil {
		return nil, err
	}
	return profiletest.Fixture(1), nil
}

// testServer is a Server over fakes with a fixed clock and a captured log.
type testServer struct {
	*Server
	store *fakeStore
	live  *fakeLive
	log   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestServer(t testing.TB, configure func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{store: newFakeStore(), live: &fakeLive{}, log: &syncBuffer{}}
	opts := Options{
		Store:  ts.store,
		Live:   ts.live,
		Logger: slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return testNow },
	}
	if configure != nil {
		configure(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = s
	return ts
}

// get serves one GET through the handler; headers are "Name: value" pairs.
func (ts *testServer) get(target string, headers ...string) *httptest.ResponseRecorder {
	return ts.do(httptest.NewRequest(http.MethodGet, target, nil), headers...)
}

func (ts *testServer) do(req *http.Request, headers ...string) *httptest.ResponseRecorder {
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, req)
	return rec
}

// onLoopback marks a request as arriving on a loopback listener, as
// net/http does for real connections.
func onLoopback(req *http.Request, local string) *http.Request {
	addr, err := net.ResolveTCPAddr("tcp", local)
	if err != nil {
		panic(err)
	}
	return req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, addr))
}

// wantError checks a JSON error response's status and parameter.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, param string) errorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON; body %s", ct, rec.Body)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if body.Error == "" || body.Parameter != param {
		t.Fatalf("error body %+v, want an error naming parameter %q", body, param)
	}
	return body
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, rec.Body, err)
	}
	return v
}

// blockingLive holds every live profile until release is closed.
type blockingLive struct {
	entered chan struct{}
	release chan struct{}
}

func (l *blockingLive) Profile(ctx context.Context, d time.Duration, sel string) (*profile.Profile, error) {
	l.entered <- struct{}{}
	select {
	case <-l.release:
		return profiletest.Fixture(1), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
