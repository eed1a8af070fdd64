package export

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"github.com/klauspost/compress/gzip"
)

// PyroscopeProfileName is the __name__ of Ember's series: with the sample
// types of the pprof sent (samples/count, cpu/nanoseconds; period
// cpu/nanoseconds), Pyroscope names the profile types
// process_cpu:cpu:nanoseconds:cpu:nanoseconds and
// process_cpu:samples:count:cpu:nanoseconds, as for Grafana Alloy's eBPF
// profiler.
const PyroscopeProfileName = "process_cpu"

// maxPushBytes bounds one push request's pprof bytes: an interval of a
// busy host is sent in several requests rather than one Pyroscope refuses.
var maxPushBytes = 2 << 20 // a variable for tests

// pyroscope sends to push.v1.PusherService/Push over Connect.
type pyroscope struct {
	client pushv1connect.PusherServiceClient
	idle   func()
	pprof  pprofWriter
}

// pprofWriter writes series as pprof profiles, gzipped or not: gzipped
// each for /ingest, raw for the push API, whose requests are gzipped whole.
type pprofWriter struct {
	gzip bool
	// zw is reused for every series: a gzip writer allocates about a
	// megabyte, more than most series' profiles.
	zw *gzip.Writer
	// enc and raw are kept from one series and interval to the next.
	enc seriesEncoder
	raw []byte
	// out holds the profiles of one request (see startRequest), kept from
	// one request to the next: sending copies them.
	out appendWriter
}

// appendWriter appends what is written to it to its bytes.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// pprofGzipLevel is the gzip level of what Pyroscope's APIs are sent:
// klauspost's stateless mode, which on an interval's series (many profiles
// of 1-50 KB each, /ingest) and on whole push requests took less CPU than
// its fastest level and made smaller output (docs/benchmarks.md, "Export to
// Pyroscope and OTLP").
const pprofGzipLevel = gzip.StatelessCompression

func newPyroscope(t Target, creds credentials, tlsCfg *tls.Config) *pyroscope {
	client, idle := newHTTPClient(t, creds, tlsCfg)
	// The pprof bytes go raw and, with gzip on, the whole request is
	// gzipped (Connect's Content-Encoding): one stream an interval rather
	// than one per series took about a third less CPU and made 47% of the
	// bytes rather than 60% (docs/benchmarks.md). Pyroscope's distributor
	// reads a raw profile as well as a gzipped one (pprof.RawFromBytes), and
	// its Connect handlers take gzip requests.
	var opts []connect.ClientOption
	if t.Gzip {
		opts = append(opts, connectGzip(), connect.WithSendCompression("gzip"))
	}
	return &pyroscope{client: pushv1connect.NewPusherServiceClient(client, t.URL.String(), opts...),
		idle: idle}
}

// connectGzip is Connect's "gzip" made with klauspost/compress, in the
// stateless mode that is cheapest on these requests (see pprofGzipLevel);
// each client pools its own writers.
func connectGzip() connect.ClientOption {
	return connect.WithAcceptCompression("gzip",
		func() connect.Decompressor { return &gzip.Reader{} },
		func() connect.Compressor {
			zw, _ := gzip.NewWriterLevel(io.Discard, pprofGzipLevel) // a valid level: no error
			return zw
		})
}

// newHTTPClient is the client of one target: one connection kept, the
// credentials' headers on every request.
func newHTTPClient(t Target, creds credentials, tlsCfg *tls.Config) (client *http.Client, closeIdle func()) {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: t.Timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   1, // one request in flight per sink
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: withHeaders{transport, creds.headers()}, Timeout: t.Timeout}, transport.CloseIdleConnections
}

// withHeaders adds the credentials' headers to each request.
type withHeaders struct {
	next    http.RoundTripper
	headers map[string]string
}

func (w withHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(w.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range w.headers {
			r.Header.Set(k, v)
		}
	}
	return w.next.RoundTrip(r)
}

func (p *pyroscope) send(ctx context.Context, iv *interval, done func(profiles, bytes int)) error {
	p.pprof.enc.reset(iv.p)
	defer p.pprof.enc.release()
	for iv.sent < len(iv.series) {
		p.pprof.startRequest()
		req := &pushv1.PushRequest{}
		size := 0
		for i := iv.sent; i < len(iv.series) && size < maxPushBytes; i++ {
			s := iv.series[i]
			raw, err := p.pprof.encode(s)
			if err != nil {
				return fmt.Errorf("encode the profile of %s: %w", s.Get(LabelServiceName), err)
			}
			size += len(raw)
			labels := make([]*typesv1.LabelPair, 0, len(s.Labels)+1)
			labels = append(labels, &typesv1.LabelPair{Name: "__name__", Value: PyroscopeProfileName})
			for _, l := range s.Labels {
				labels = append(labels, &typesv1.LabelPair{Name: l.Name, Value: l.Value})
			}
			req.Series = append(req.Series, &pushv1.RawProfileSeries{
				Labels:  labels,
				Samples: []*pushv1.RawSample{{RawProfile: raw, ID: dedupeID(iv.ref.Key, s.Labels)}},
			})
		}
		if _, err := p.client.Push(ctx, connect.NewRequest(req)); err != nil {
			// Pyroscope's distributor keeps the valid series of a request
			// it answers invalid; the next requests go on either way.
			if iv.refuse(len(req.Series), err) {
				continue
			}
			return err
		}
		iv.sent += len(req.Series)
		done(len(req.Series), size)
	}
	return nil
}

func (p *pyroscope) close() error {
	p.idle()
	return nil
}

// startRequest lets the profiles of the next request reuse the previous
// one's room: call it once the previous request is sent, or given up.
func (w *pprofWriter) startRequest() { w.out.b = w.out.b[:0] }

// encode writes the samples of one series as a pprof profile, gzipped
// unless gzip is off (see seriesEncoder). The result is valid until
// startRequest.
func (w *pprofWriter) encode(s Series) ([]byte, error) {
	w.raw = w.enc.encode(w.raw[:0], s.Samples)
	start := len(w.out.b)
	if !w.gzip {
		w.out.b = append(w.out.b, w.raw...)
		return w.out.b[start:len(w.out.b):len(w.out.b)], nil
	}
	if w.zw == nil {
		var err error
		if w.zw, err = gzip.NewWriterLevel(&w.out, pprofGzipLevel); err != nil {
			return nil, err
		}
	} else {
		w.zw.Reset(&w.out)
	}
	if _, err := w.zw.Write(w.raw); err != nil {
		return nil, err
	}
	if err := w.zw.Close(); err != nil {
		return nil, err
	}
	// A full slice: the next profile is appended after it.
	return w.out.b[start:len(w.out.b):len(w.out.b)], nil
}

// dedupeID names one series of one interval the same way at every try and
// after every restart, so that a backend that deduplicates by it keeps one
// copy of what at-least-once delivery sent twice. It is formatted as a UUID.
func dedupeID(key int64, labels []Label) string {
	h := sha256.New()
	binary.Write(h, binary.BigEndian, key)
	for _, l := range labels {
		h.Write([]byte(l.Name))
		h.Write([]byte{0})
		h.Write([]byte(l.Value))
		h.Write([]byte{0})
	}
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x80 // version 8: a name-based UUID of our own
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}
