// Command exportsink receives what `ember daemon --export` sends, for
// bench/export-overhead.sh: Pyroscope pushes over Connect and OTLP profiles
// over gRPC, decoded by the backends' own API modules and then dropped, and
// Pyroscope /ingest requests (the profile part of the form read). It prints
// what it took when it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // as a Collector has it
	"google.golang.org/grpc/stats"
)

type counts struct{ requests, series, bytes, wire atomic.Int64 }

// countBody adds the bytes of each request's body, as sent (compressed or
// not), to wire.
func countBody(wire *atomic.Int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &countingBody{ReadCloser: r.Body, n: wire}
		next.ServeHTTP(w, r)
	})
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

type pyroscope struct {
	pushv1connect.UnimplementedPusherServiceHandler
	counts
}

func (p *pyroscope) Push(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	p.requests.Add(1)
	for _, s := range req.Msg.Series {
		p.series.Add(1)
		for _, raw := range s.Samples {
			p.bytes.Add(int64(len(raw.RawProfile)))
		}
	}
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

type otlp struct {
	pprofileotlp.UnimplementedGRPCServer
	counts
}

func (o *otlp) Export(_ context.Context, req pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	o.requests.Add(1)
	o.series.Add(int64(req.Profiles().ResourceProfiles().Len()))
	if b, err := req.MarshalProto(); err == nil {
		o.bytes.Add(int64(len(b)))
	}
	return pprofileotlp.NewExportResponse(), nil
}

// wireStats adds the size of each message received, as sent (compressed
// or not, with gRPC's framing), to wire.
type wireStats struct{ wire *atomic.Int64 }

func (s *wireStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (s *wireStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (s *wireStats) HandleConn(context.Context, stats.ConnStats) {}
func (s *wireStats) HandleRPC(_ context.Context, st stats.RPCStats) {
	if in, ok := st.(*stats.InPayload); ok {
		s.wire.Add(int64(in.WireLength))
	}
}

// ingest takes Pyroscope /ingest requests: the pprof in the form's
// "profile" part.
type ingest struct{ counts }

func (i *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, fh, err := r.FormFile("profile")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	i.requests.Add(1)
	i.series.Add(1)
	i.bytes.Add(fh.Size)
}

func main() {
	pyroAddr := flag.String("pyroscope", "127.0.0.1:4040", "address of the Pyroscope push receiver")
	otlpAddr := flag.String("otlp", "127.0.0.1:4317", "address of the OTLP gRPC receiver")
	flag.Parse()
	p, o, in := &pyroscope{}, &otlp{}, &ingest{}
	path, h := pushv1connect.NewPusherServiceHandler(p)
	mux := http.NewServeMux()
	mux.Handle(path, countBody(&p.wire, h))
	mux.Handle("/ingest", countBody(&in.wire, in))
	go func() { log.Fatal(http.ListenAndServe(*pyroAddr, mux)) }()
	lis, err := net.Listen("tcp", *otlpAddr)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(&wireStats{&o.wire}))
	pprofileotlp.RegisterGRPCServer(srv, o)
	go srv.Serve(lis)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	fmt.Printf("pyroscope: %d requests, %d series, %d pprof bytes, %d bytes on the wire\n", p.requests.Load(), p.series.Load(), p.bytes.Load(), p.wire.Load())
	fmt.Printf("pyroscope /ingest: %d requests, %d series, %d pprof bytes, %d bytes on the wire\n", in.requests.Load(), in.series.Load(), in.bytes.Load(), in.wire.Load())
	fmt.Printf("otlp: %d requests, %d resources, %d bytes, %d bytes on the wire\n", o.requests.Load(), o.series.Load(), o.bytes.Load(), o.wire.Load())
}
