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
)

type counts struct{ requests, series, bytes atomic.Int64 }

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
	mux.Handle(path, h)
	mux.Handle("/ingest", in)
	go func() { log.Fatal(http.ListenAndServe(*pyroAddr, mux)) }()
	lis, err := net.Listen("tcp", *otlpAddr)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	pprofileotlp.RegisterGRPCServer(srv, o)
	go srv.Serve(lis)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	fmt.Printf("pyroscope: %d requests, %d series, %d pprof bytes\n", p.requests.Load(), p.series.Load(), p.bytes.Load())
	fmt.Printf("pyroscope /ingest: %d requests, %d series, %d pprof bytes\n", in.requests.Load(), in.series.Load(), in.bytes.Load())
	fmt.Printf("otlp: %d requests, %d resources, %d bytes\n", o.requests.Load(), o.series.Load(), o.bytes.Load())
}
