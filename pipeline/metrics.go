package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the pipeline does: how late drains start, what waits
// to be named, and every batch and interval dropped, by reason and sink.
type Metrics struct {
	drain, symbolize, drainLateness prometheus.Histogram
	namingQueue                     prometheus.Gauge
	batchesFolded                   prometheus.Counter
	batchesDropped, samplesDropped  *prometheus.CounterVec
	sinkIntervals                   *prometheus.CounterVec
	sinkQueue                       *prometheus.GaugeVec
	sinkWrite                       *prometheus.HistogramVec
}

// NewMetrics makes the pipeline's metrics and registers them with reg,
// unless reg is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 14) // 0.5 ms .. 4 s
	m := &Metrics{
		drain: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ember_drain_seconds", Help: "Time to read and empty the BPF maps.", Buckets: buckets,
		}),
		symbolize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ember_symbolize_seconds", Help: "Time to name one drained batch.", Buckets: buckets,
		}),
		drainLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ember_drain_lateness_seconds",
			Help:    "How late each drain started, against --drain-interval after the one before; late drains lose stacks to full maps.",
			Buckets: buckets,
		}),
		namingQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ember_naming_queue_batches", Help: "Drained batches waiting to be named.",
		}),
		batchesFolded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ember_batches_folded_total",
			Help: "Drained batches added to one still waiting to be named, because naming was behind; nothing is lost.",
		}),
		batchesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_batches_dropped_total",
			Help: "Drained batches dropped unnamed, by reason: naming_behind (the naming queue was full and its newest batch could not take more), shutdown (--shutdown-timeout passed first).",
		}, []string{"reason"}),
		samplesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_samples_dropped_total",
			Help: "Samples in the batches counted by ember_batches_dropped_total, by the same reasons.",
		}, []string{"reason"}),
		sinkIntervals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_sink_intervals_total",
			Help: "Intervals by sink and outcome: written; dropped_behind (the sink's queue was full), dropped_error, dropped_shutdown (not written within --shutdown-timeout), or a reason of the sink's own (dropped_disk_full).",
		}, []string{"sink", "outcome"}),
		sinkQueue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_sink_queue_intervals", Help: "Intervals waiting for each sink, beside the one it writes.",
		}, []string{"sink"}),
		sinkWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ember_sink_write_seconds", Help: "Time each sink took to take one interval.", Buckets: buckets,
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.drain, m.symbolize, m.drainLateness, m.namingQueue, m.batchesFolded, m.batchesDropped,
			m.samplesDropped, m.sinkIntervals, m.sinkQueue, m.sinkWrite)
	}
	return m
}
