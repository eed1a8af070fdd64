package web

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the API's own metrics, registered on Options.Registry
// beside the daemon's.
type httpMetrics struct {
	requests *prometheus.CounterVec   // by route and status code
	duration *prometheus.HistogramVec // by route
	inFlight *prometheus.GaugeVec     // expensive queries and live profiles running
	rejected *prometheus.CounterVec   // 429s, by kind
	cache    *prometheus.CounterVec   // flame-graph cache lookups, by result
}

func newHTTPMetrics(reg prometheus.Registerer, flames *flameCache) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ember_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern (live profiles include their sampling time).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_http_queries_in_flight",
			Help: "Expensive queries (kind=query) and live profiles (kind=live) running, each bounded by a limit.",
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_http_queries_rejected_total",
			Help: "Requests answered 429 because their kind's concurrency limit was reached.",
		}, []string{"kind"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_http_flamegraph_cache_requests_total",
			Help: "Flame-graph requests by cache result: hit, miss, or bypass (the range reaches into the last minutes, or the cache is off).",
		}, []string{"result"}),
	}
	collectors := []prometheus.Collector{m.requests, m.duration, m.inFlight, m.rejected, m.cache}
	if flames != nil {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ember_http_flamegraph_cache_bytes",
			Help: "Gzipped flame-graph answers held by the cache.",
		}, func() float64 { return float64(flames.size()) }))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("web: register http metrics: %w", err)
		}
	}
	// Show both kinds from the start, so that an alert on them has a series.
	for _, kind := range []string{kindQuery, kindLive} {
		m.inFlight.WithLabelValues(kind)
		m.rejected.WithLabelValues(kind)
	}
	for _, r := range []string{"hit", "miss", "bypass"} {
		m.cache.WithLabelValues(r)
	}
	return m, nil
}

const (
	kindQuery = "query"
	kindLive  = "live"
)
