package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func testUI() fstest.MapFS {
	return fstest.MapFS{
		"index.html":  {Data: []byte("<!doctype html><title>Ember</title>" + strings.Repeat(" ", 2000))},
		"js/main.js":  {Data: []byte("export {};")},
		"style.css":   {Data: []byte("body{}")},
		"favicon.svg": {Data: []byte("<svg/>")},
	}
}

func TestUIFiles(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.UI = testUI(); o.AuthToken = "s3cret" })
	for _, tc := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/?from=now-1h&query=%7Bcomm%3D%22x%22%7D", "text/html; charset=utf-8"},
		{"/ui/index.html", "text/html; charset=utf-8"},
		{"/ui/js/main.js", "text/javascript; charset=utf-8"},
		{"/ui/style.css", "text/css; charset=utf-8"},
		{"/ui/favicon.svg", "image/svg+xml"},
	} {
		rec := ts.get(tc.path) // no token: the shell holds no data
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, rec.Code, rec.Body)
		}
		h := rec.Header()
		if h.Get("Content-Type") != tc.ctype || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" ||
			h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", tc.path, h)
		}
		if strings.HasPrefix(tc.ctype, "text/html") && !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: CSP %q", tc.path, h.Get("Content-Security-Policy"))
		}
		again := ts.get(tc.path, "If-None-Match: "+h.Get("ETag"))
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("%s with its ETag: %d, %d bytes", tc.path, again.Code, again.Body.Len())
		}
	}
	rec := ts.get("/", "Accept-Encoding: gzip")
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("index.html not gzipped: %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(zr); !bytes.HasPrefix(body, []byte("<!doctype html>")) {
		t.Errorf("gzipped index.html: %q", body[:20])
	}
	wantError(t, ts.get("/ui/nothing.js"), http.StatusNotFound, "")
	wantError(t, ts.get("/ui/../server.go"), http.StatusNotFound, "")
	// The API stays behind the token.
	wantError(t, ts.get("/api/v1/labels"), http.StatusUnauthorized, "")
}

func TestNoUI(t *testing.T) {
	ts := newTestServer(t, nil)
	wantError(t, ts.get("/"), http.StatusNotFound, "")
	if _, err := New(Options{Store: newFakeStore(), UI: fstest.MapFS{"app.js": {}}}); err == nil {
		t.Error("a UI without index.html was accepted")
	}
}

func TestFlameGraphCache(t *testing.T) {
	ts := newTestServer(t, nil)
	past := "/api/v1/flamegraph?from=-2h&to=-1h"
	first := ts.get(past, "Accept-Encoding: gzip")
	if first.Code != http.StatusOK {
		t.Fatalf("%d %s", first.Code, first.Body)
	}
	second := ts.get(past) // a hit, unpacked for a client without gzip
	if n := len(ts.store.calls()); n != 1 {
		t.Fatalf("the store was asked %d times for the same past range, want 1", n)
	}
	zr, err := gzip.NewReader(first.Body)
	if err != nil {
		t.Fatal(err)
	}
	firstBody, _ := io.ReadAll(zr)
	if !bytes.Equal(firstBody, second.Body.Bytes()) {
		t.Errorf("cached answer differs:\n%s\n%s", firstBody, second.Body)
	}
	// Another spelling of the same selector is the same entry; another node
	// budget is not.
	ts.get(past + "&query=%7B%7D")
	ts.get(past + "&max_nodes=100")
	if n := len(ts.store.calls()); n != 2 {
		t.Errorf("store calls %d, want 2", n)
	}
	// A range reaching into the last minutes is never cached.
	ts.get("/api/v1/flamegraph?from=-1h")
	ts.get("/api/v1/flamegraph?from=-1h")
	if n := len(ts.store.calls()); n != 4 {
		t.Errorf("store calls %d, want 4", n)
	}
}

func TestFlameCacheBounds(t *testing.T) {
	now := time.Unix(1e9, 0)
	c := newFlameCache(100, time.Minute)
	key := func(i int) flameKey { return newFlameKey(time.Unix(int64(i), 0), time.Unix(int64(i+1), 0), "", "", 10) }
	for i := range 10 {
		c.put(key(i), make([]byte, 20), now)
	}
	if c.size() > 100 {
		t.Errorf("cache holds %d bytes, budget 100", c.size())
	}
	if _, ok := c.get(key(0), now); ok {
		t.Error("the least recently used entry survived")
	}
	if _, ok := c.get(key(9), now); !ok {
		t.Error("the newest entry was dropped")
	}
	if _, ok := c.get(key(9), now.Add(2*time.Minute)); ok {
		t.Error("an expired entry was served")
	}
	c.put(key(20), make([]byte, 26), now) // over a quarter of the budget
	if _, ok := c.get(key(20), now); ok {
		t.Error("an oversized entry was kept")
	}
}

// TestUIInlineScript: a script index.html marks data-inline is served in
// the page, and the page's CSP allows exactly it by its hash.
func TestUIInlineScript(t *testing.T) {
	ui := testUI()
	ui["index.html"] = &fstest.MapFile{Data: []byte(`<!doctype html><script src="ui/js/early.js" data-inline></script><script type="module" src="ui/js/main.js"></script>`)}
	ui["js/early.js"] = &fstest.MapFile{Data: []byte(`"use strict"; window.early = 1;`)}
	ts := newTestServer(t, func(o *Options) { o.UI = ui })
	rec := ts.get("/")
	if want := `<script>"use strict"; window.early = 1;</script><script type="module" src="ui/js/main.js">`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("page %q lacks %q", rec.Body, want)
	}
	// printf %s '"use strict"; window.early = 1;' | openssl dgst -sha256 -binary | base64
	if csp, want := rec.Header().Get("Content-Security-Policy"), "script-src 'self' 'sha256-1wMsKob/4z6T/qtb1nzvwTqrQp3+jv3yJKbDzdh925s=';"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q lacks %q", csp, want)
	}
	ui["index.html"] = &fstest.MapFile{Data: []byte(`<script src="ui/js/gone.js" data-inline></script>`)}
	if _, err := New(Options{Store: newFakeStore(), UI: ui}); err == nil {
		t.Error("a page inlining a missing script was accepted")
	}
}
