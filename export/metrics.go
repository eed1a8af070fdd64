package export

import (
	"context"
	"errors"
	"net"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// Metrics count what exporters do, by sink. Every way an interval can fail
// to reach a backend has a reason label.
type Metrics struct {
	intervals, profiles, bytes *prometheus.CounterVec
	refused                    *prometheus.CounterVec
	failures, skips            *prometheus.CounterVec
	backlog, lag               *prometheus.GaugeVec
}

// NewMetrics makes the exporters' metrics and registers them with reg,
// unless reg is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		intervals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_export_intervals_sent_total", Help: "Stored intervals a backend has taken, but for profiles it refused for good (ember_export_profiles_refused_total).",
		}, []string{"sink"}),
		profiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_export_profiles_sent_total",
			Help: "Profiles a backend has taken: one per service and label set of an interval (a Pyroscope series, an OTLP resource).",
		}, []string{"sink"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_export_profiles_refused_total",
			Help: "Profiles a backend refused for good (answered invalid, e.g. a label value too long); the rest of their interval is still sent. Over Pyroscope's push API these are the profiles of refused requests, some of which Pyroscope may have kept.",
		}, []string{"sink"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_export_bytes_sent_total", Help: "Encoded profile bytes in the requests a backend took, before transport compression.",
		}, []string{"sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_export_failures_total",
			Help: "Failed tries to send an interval, by reason: rate_limited, unavailable, server_error, timeout, auth, rejected, store, error. All but rejected are retried.",
		}, []string{"sink", "reason"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_export_intervals_skipped_total",
			Help: "Intervals never sent, by reason: rejected (the backend refused every profile of them for good), expired (retention removed them before they were sent).",
		}, []string{"sink", "reason"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_export_backlog_intervals", Help: "Stored intervals not yet sent to the sink.",
		}, []string{"sink"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_export_lag_seconds", Help: "How far the last interval sent trails the newest stored one; 0 when caught up.",
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.intervals, m.profiles, m.refused, m.bytes, m.failures, m.skips, m.backlog, m.lag)
	}
	return m
}

// sinkMetrics are one sink's; nil counts nothing.
type sinkMetrics struct {
	m    *Metrics
	sink string
}

func (m *Metrics) forSink(sink string) *sinkMetrics {
	if m == nil {
		return nil
	}
	// Series from the start, so that alerts and rates see them.
	m.intervals.WithLabelValues(sink)
	m.profiles.WithLabelValues(sink)
	m.refused.WithLabelValues(sink)
	m.bytes.WithLabelValues(sink)
	return &sinkMetrics{m: m, sink: sink}
}

func (s *sinkMetrics) sent(profiles, bytes int) {
	if s != nil {
		s.m.profiles.WithLabelValues(s.sink).Add(float64(profiles))
		s.m.bytes.WithLabelValues(s.sink).Add(float64(bytes))
	}
}

func (s *sinkMetrics) refused(profiles int) {
	if s != nil {
		s.m.refused.WithLabelValues(s.sink).Add(float64(profiles))
	}
}

func (s *sinkMetrics) intervalSent() {
	if s != nil {
		s.m.intervals.WithLabelValues(s.sink).Inc()
	}
}

func (s *sinkMetrics) failed(reason string) {
	if s != nil {
		s.m.failures.WithLabelValues(s.sink, reason).Inc()
	}
}

func (s *sinkMetrics) skipped(reason string) {
	if s != nil {
		s.m.skips.WithLabelValues(s.sink, reason).Inc()
	}
}

func (s *sinkMetrics) progress(backlog int, lagSeconds float64) {
	if s != nil {
		s.m.backlog.WithLabelValues(s.sink).Set(float64(backlog))
		s.m.lag.WithLabelValues(s.sink).Set(lagSeconds)
	}
}

// errStore marks a failure to read the interval from the store.
var errStore = errors.New("read the store")

// classify names why a try failed, and whether trying again is pointless.
// Connect and gRPC share their codes' numbers.
func classify(err error) (reason string, permanent bool) {
	var code connect.Code
	var ce *connect.Error
	if errors.As(err, &ce) {
		code = ce.Code()
	} else if s, ok := status.FromError(err); ok {
		code = connect.Code(s.Code())
	}
	switch {
	case errors.Is(err, errStore):
		return "store", false
	case errors.Is(err, context.DeadlineExceeded) || code == connect.CodeDeadlineExceeded:
		return "timeout", false
	case code == connect.CodeResourceExhausted:
		return "rate_limited", false
	case code == connect.CodeUnavailable:
		return "unavailable", false
	case code == connect.CodeUnauthenticated || code == connect.CodePermissionDenied:
		return "auth", false // a fixed credential file is read at the next start; keep the data until then
	case code == connect.CodeInvalidArgument:
		return "rejected", true
	case code == connect.CodeInternal || code == connect.CodeUnknown || code == connect.CodeDataLoss:
		return "server_error", false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "unavailable", false
	}
	return "error", false
}
