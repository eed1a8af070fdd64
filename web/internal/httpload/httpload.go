// Package httpload drives concurrent GET requests at one loopback URL and
// reports latency percentiles and errors. It backs web's concurrent
// flame-graph benchmark and the web/loadtest command that runs the same
// load against a running daemon; it refuses any host but loopback, so that
// it cannot be pointed at someone else's server.
package httpload

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is one load run: Requests GETs of URL, Concurrency at a time.
type Config struct {
	URL         string
	Concurrency int
	Requests    int
	Token       string        // sent as a bearer token when not empty
	Timeout     time.Duration // per request; 0 means 60 s
	Client      *http.Client  // nil makes one with keep-alive for Concurrency connections
}

// Result is what a run measured. Latencies are of 200 responses only: a 429
// is fast by design and would flatter the percentiles; it is counted among
// Errors instead, by status code ("transport" for failed connections).
type Result struct {
	Requests      int
	OK            int
	Errors        map[string]int
	P50, P95, P99 time.Duration
	Max           time.Duration
	Elapsed       time.Duration
	BytesPerOK    int64 // mean response size
}

func (r Result) String() string {
	var errs []string
	for k, n := range r.Errors {
		errs = append(errs, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(errs)
	if errs == nil {
		errs = []string{"none"}
	}
	return fmt.Sprintf("requests=%d ok=%d errors=%s p50=%s p95=%s p99=%s max=%s elapsed=%s throughput=%.1f/s bytes/ok=%d",
		r.Requests, r.OK, strings.Join(errs, ","), ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max),
		r.Elapsed.Round(time.Millisecond), float64(r.OK)/r.Elapsed.Seconds(), r.BytesPerOK)
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms" }

// CheckLoopback accepts only http(s) URLs whose host is a loopback IP or
// localhost.
func CheckLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s: want an http or https URL", rawURL)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s: the load test runs only against loopback (localhost, 127.0.0.1, ::1)", rawURL)
	}
	return nil
}

// Run performs the load and measures it; it stops early when ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := CheckLoopback(cfg.URL); err != nil {
		return Result{}, err
	}
	if cfg.Concurrency < 1 || cfg.Requests < 1 {
		return Result{}, fmt.Errorf("concurrency and requests must be at least 1")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}}
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		bytes     int64
		res       = Result{Errors: map[string]int{}}
	)
	next := make(chan struct{})
	go func() {
		defer close(next)
		for range cfg.Requests {
			select {
			case next <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				d, n, status := get(ctx, client, cfg)
				mu.Lock()
				res.Requests++
				if status == "200" {
					res.OK++
					latencies = append(latencies, d)
					bytes += n
				} else {
					res.Errors[status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(latencies)
	res.P50, res.P95, res.P99 = percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99)
	if len(latencies) > 0 {
		res.Max = latencies[len(latencies)-1]
		res.BytesPerOK = bytes / int64(len(latencies))
	}
	return res, ctx.Err()
}

func get(ctx context.Context, client *http.Client, cfg Config) (time.Duration, int64, string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return 0, 0, "transport"
	}
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, "transport"
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return d, n, "transport"
	}
	return d, n, strconv.Itoa(resp.StatusCode)
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n), 1-based
	return sorted[max(rank, 1)-1]
}
