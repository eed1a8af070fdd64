// Command loadtest measures the latency of concurrent queries against a
// running Ember daemon on loopback, for docs/benchmarks.md:
//
//	go run ./web/loadtest -c 8 -n 400 \
//	  -url 'http://127.0.0.1:7070/api/v1/flamegraph?from=-24h'
//
// It prints requests, errors by status, p50/p95/p99 and max latency of the
// successful ones, and throughput. It refuses URLs off loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/ember-profiler/ember/web/internal/httpload"
)

func main() {
	var (
		cfg       httpload.Config
		tokenFile string
	)
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:7070/api/v1/flamegraph?from=-1h", "URL to GET (loopback only)")
	flag.IntVar(&cfg.Concurrency, "c", 8, "requests in flight at once")
	flag.IntVar(&cfg.Requests, "n", 200, "requests in all")
	flag.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "per-request timeout")
	flag.StringVar(&tokenFile, "auth-token-file", "", "file holding the daemon's bearer token")
	flag.Parse()
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(2)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := httpload.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	fmt.Printf("url=%s concurrency=%d\n%s\n", cfg.URL, cfg.Concurrency, res)
}
