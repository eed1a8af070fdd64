package httpload

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:7070/x", "http://localhost:7070", "https://[::1]:7070/", "http://127.0.0.2"} {
		if err := CheckLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/", "http://10.0.0.1:7070", "ftp://127.0.0.1/", "http://localhost.example.com", "::"} {
		if err := CheckLoopback(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestRun(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			return
		}
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		time.Sleep(time.Millisecond)
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 3, Requests: 40, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 40 || res.OK != 30 || res.Errors["429"] != 10 || res.BytesPerOK != 5 {
		t.Errorf("result %s", res)
	}
	if res.P50 < time.Millisecond || res.P50 > res.P95 || res.P95 > res.P99 || res.P99 > res.Max {
		t.Errorf("percentiles out of order: %s", res)
	}
}

func TestPercentile(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i))
	}
	if percentile(l, 50) != 50 || percentile(l, 95) != 95 || percentile(l, 99) != 99 || percentile(l[:1], 99) != 1 {
		t.Error("nearest-rank percentiles")
	}
}
