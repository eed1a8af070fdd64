package export

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/klauspost/compress/gzip"
	"google.golang.org/protobuf/proto"

	"github.com/ember-profiler/ember/storage"
)

// BenchmarkPprofGzip gzips the Pyroscope series of stored intervals, one
// stream per series as they are sent, at the levels weighed for
// pprofGzipLevel, and as one stream; an op is an interval. It reads the
// store named by EMBER_BENCH_STORE (e.g. one made by ember-backfill):
//
//	EMBER_BENCH_STORE=DIR go test ./export/ -run '^$' -bench PprofGzip
func BenchmarkPprofGzip(b *testing.B) {
	var intervals [][][]byte // the raw pprof of each series of each interval
	raw := 0
	for _, iv := range benchIntervals(b) {
		var enc seriesEncoder
		enc.reset(iv.p)
		var series [][]byte
		for _, sr := range iv.series {
			series = append(series, enc.encode(nil, sr.Samples))
			raw += len(series[len(series)-1])
		}
		intervals = append(intervals, series)
	}
	for _, level := range []struct {
		name  string
		level int
	}{{"fastest", gzip.BestSpeed}, {"stateless", gzip.StatelessCompression}, {"huffman-only", gzip.HuffmanOnly}} {
		b.Run(level.name, func(b *testing.B) {
			var out appendWriter
			zw, _ := gzip.NewWriterLevel(&out, level.level)
			gzipped := 0
			cpu0 := processCPU()
			for i := 0; b.Loop(); i++ {
				for _, series := range intervals[i%len(intervals)] {
					out.b = out.b[:0]
					zw.Reset(&out)
					zw.Write(series)
					zw.Close()
					if i < len(intervals) {
						gzipped += len(out.b)
					}
				}
			}
			// CPU, not wall time: the host is shared, and GC counts.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(raw)/float64(len(intervals))/1024, "rawKB/op")
			if b.N >= len(intervals) {
				b.ReportMetric(100*float64(gzipped)/float64(raw), "%gzipped")
			}
		})
	}
	// One stream an interval, as gzip of a whole push request (Connect's
	// Content-Encoding) would be, with the profiles inside left raw.
	b.Run("one-stream-fastest", func(b *testing.B) {
		var out appendWriter
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
		gzipped := 0
		cpu0 := processCPU()
		for i := 0; b.Loop(); i++ {
			out.b = out.b[:0]
			zw.Reset(&out)
			for _, series := range intervals[i%len(intervals)] {
				zw.Write(series)
			}
			zw.Close()
			if i < len(intervals) {
				gzipped += len(out.b)
			}
		}
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		if b.N >= len(intervals) {
			b.ReportMetric(100*float64(gzipped)/float64(raw), "%gzipped")
		}
	})
}

// benchIntervals reads up to 40 intervals of the store named by
// EMBER_BENCH_STORE, split into series as the exporters split them.
func benchIntervals(b *testing.B) []*interval {
	b.Helper()
	dir := os.Getenv("EMBER_BENCH_STORE")
	if dir == "" {
		b.Skip("EMBER_BENCH_STORE names no store")
	}
	s, err := storage.Open(storage.Options{Dir: dir, MinFreeDiskBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	policy, _ := newLabelPolicy(DefaultServiceName, false)
	refs, _ := s.IntervalsAfter(0, 40)
	var out []*interval
	for _, ref := range refs {
		p, err := s.ReadInterval(context.Background(), ref)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, &interval{ref: ref, p: p, series: policy.split(p)})
	}
	if len(out) == 0 {
		b.Skip("an empty store")
	}
	return out
}

// processCPU is the CPU time of the whole process, garbage collection
// included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRequestGzip gzips whole requests of stored intervals, as a
// transport's compression does: the Pyroscope push request with raw pprof
// inside (Connect's Content-Encoding), and the OTLP request (gRPC's). An op
// is an interval. It reads the store named by EMBER_BENCH_STORE:
//
//	EMBER_BENCH_STORE=DIR go test ./export/ -run '^$' -bench RequestGzip
func BenchmarkRequestGzip(b *testing.B) {
	requests := map[string][][]byte{}
	for _, iv := range benchIntervals(b) {
		var enc seriesEncoder
		enc.reset(iv.p)
		push := &pushv1.PushRequest{}
		for _, sr := range iv.series {
			push.Series = append(push.Series, &pushv1.RawProfileSeries{
				Samples: []*pushv1.RawSample{{RawProfile: enc.encode(nil, sr.Samples)}}})
		}
		raw, _ := proto.Marshal(push)
		requests["pyroscope"] = append(requests["pyroscope"], raw)
		var oe otlpEncoder
		req, _ := oe.encode(iv)
		requests["otlp"] = append(requests["otlp"], append([]byte(nil), req...))
	}
	for _, kind := range []string{"pyroscope", "otlp"} {
		reqs := requests[kind]
		size := 0
		for _, r := range reqs {
			size += len(r)
		}
		for _, level := range []struct {
			name  string
			level int
		}{{"fastest", gzip.BestSpeed}, {"level2", 2}, {"stateless", gzip.StatelessCompression}, {"huffman-only", gzip.HuffmanOnly}} {
			b.Run(kind+"/"+level.name, func(b *testing.B) {
				var out appendWriter
				zw, _ := gzip.NewWriterLevel(&out, level.level)
				gzipped := 0
				cpu0 := processCPU()
				for i := 0; b.Loop(); i++ {
					out.b = out.b[:0]
					zw.Reset(&out)
					zw.Write(reqs[i%len(reqs)])
					zw.Close()
					if i < len(reqs) {
						gzipped += len(out.b)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
				b.ReportMetric(float64(size)/float64(len(reqs))/1024, "rawKB/op")
				if b.N >= len(reqs) {
					b.ReportMetric(100*float64(gzipped)/float64(size), "%gzipped")
				}
			})
		}
	}
}
