// Package exporttest runs receivers of Ember's exports for tests, built on
// the backends' own API modules: Pyroscope's Connect push handler and the
// OpenTelemetry Collector's pdata OTLP profiles gRPC server; and a receiver
// of Pyroscope's /ingest that parses what its handler parses. Each reduces
// what it decoded to plain samples that tests compare with the store.
package exporttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/pprof/profile"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A Sample is one sample as a backend sees it.
type Sample struct {
	Labels map[string]string // series or resource and sample attributes
	Stack  string            // function names, root first, joined by ";"
	CPU    int64             // cpu nanoseconds
	Count  int64             // samples
}

// A request as Request.
type Request struct {
	Header    http.Header // or gRPC metadata
	TimeNanos int64
	Types     []string // "type/unit", and the period type last
	IDs       []string // dedupe IDs (Pyroscope) or profile IDs (OTLP)
	Samples   []Sample
	Ingest    *Ingest // the query of a Pyroscope /ingest request
	// GzippedProfiles counts the pprof profiles that came gzipped
	// themselves, not only in a gzipped request (Pyroscope reads both).
	GzippedProfiles int
}

// Receiver collects requests; fail, when set, answers a request instead.
type Receiver struct {
	mu   sync.Mutex
	got  []Request
	Fail func(n int) error // n counts requests from 0
	n    int
}

func (r *Receiver) take(rec Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n++
	if r.Fail != nil {
		if err := r.Fail(n); err != nil {
			return err
		}
	}
	r.got = append(r.got, rec)
	return nil
}

func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.got...)
}

func (r *Receiver) Tries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Pyroscope serves push.v1.PusherService.
type Pyroscope struct {
	pushv1connect.UnimplementedPusherServiceHandler
	Receiver
	t *testing.T
}

func (p *Pyroscope) Push(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	rec := Request{Header: req.Header()}
	for _, s := range req.Msg.Series {
		labels := map[string]string{}
		for _, l := range s.Labels {
			labels[l.Name] = l.Value
		}
		for _, raw := range s.Samples {
			rec.IDs = append(rec.IDs, raw.ID)
			if bytes.HasPrefix(raw.RawProfile, gzipMagic) {
				rec.GzippedProfiles++
			}
			prof, err := profile.ParseData(raw.RawProfile)
			if err != nil {
				p.t.Errorf("pyroscope Receiver: %v", err)
				return nil, connect.NewError(connect.CodeInvalidArgument, err)
			}
			rec.TimeNanos = prof.TimeNanos
			rec.Types = nil
			for _, st := range prof.SampleType {
				rec.Types = append(rec.Types, st.Type+"/"+st.Unit)
			}
			rec.Types = append(rec.Types, prof.PeriodType.Type+"/"+prof.PeriodType.Unit)
			for _, smp := range prof.Sample {
				if len(smp.Label)+len(smp.NumLabel) > 0 {
					p.t.Errorf("sample labels sent to Pyroscope: %v %v", smp.Label, smp.NumLabel)
				}
				rec.Samples = append(rec.Samples, Sample{Labels: labels, Stack: PprofStack(smp),
					Count: smp.Value[0], CPU: smp.Value[1]})
			}
		}
	}
	if err := p.take(rec); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

var gzipMagic = []byte{0x1f, 0x8b}

func PprofStack(smp *profile.Sample) string {
	var names []string
	for i := len(smp.Location) - 1; i >= 0; i-- {
		for j := len(smp.Location[i].Line) - 1; j >= 0; j-- {
			names = append(names, smp.Location[i].Line[j].Function.Name)
		}
	}
	return strings.Join(names, ";")
}

// StartPyroscope serves a Receiver over TLS (the test server's own CA) or
// plain HTTP; wrap, if set, sits in front of the Connect handler.
func StartPyroscope(t *testing.T, tlsOn bool, wrap func(http.Handler) http.Handler) (*Pyroscope, *httptest.Server) {
	r := &Pyroscope{t: t}
	path, h := pushv1connect.NewPusherServiceHandler(r)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	return r, startHTTP(t, tlsOn, mux, wrap)
}

// OTLP serves the Collector's OTLP profiles gRPC service.
type OTLP struct {
	pprofileotlp.UnimplementedGRPCServer
	Receiver
}

func (o *OTLP) Export(ctx context.Context, req pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	rec := Request{Header: http.Header{}}
	for k, v := range md {
		rec.Header[http.CanonicalHeaderKey(k)] = v
	}
	ps := req.Profiles()
	dict := ps.Dictionary()
	str := func(i int32) string { return dict.StringTable().At(int(i)) }
	for _, rp := range ps.ResourceProfiles().All() {
		resLabels := map[string]string{}
		for k, v := range rp.Resource().Attributes().All() {
			resLabels[k] = v.AsString()
		}
		for _, sp := range rp.ScopeProfiles().All() {
			for _, prof := range sp.Profiles().All() {
				rec.TimeNanos = int64(prof.Time())
				st := str(prof.SampleType().TypeStrindex()) + "/" + str(prof.SampleType().UnitStrindex())
				rec.Types = append(rec.Types, st)
				rec.IDs = append(rec.IDs, prof.ProfileID().String())
				for _, smp := range prof.Samples().All() {
					labels := map[string]string{}
					for k, v := range resLabels {
						labels[k] = v
					}
					for _, ai := range smp.AttributeIndices().All() {
						kv := dict.AttributeTable().At(int(ai))
						labels[str(kv.KeyStrindex())] = kv.Value().AsString()
					}
					var names []string
					locs := dict.StackTable().At(int(smp.StackIndex())).LocationIndices()
					for i := locs.Len() - 1; i >= 0; i-- {
						lines := dict.LocationTable().At(int(locs.At(i))).Lines()
						for j := lines.Len() - 1; j >= 0; j-- {
							names = append(names, str(dict.FunctionTable().At(int(lines.At(j).FunctionIndex())).NameStrindex()))
						}
					}
					d := Sample{Labels: labels, Stack: strings.Join(names, ";")}
					v := smp.Values().At(0)
					if st == "cpu/nanoseconds" {
						d.CPU = v
					} else {
						d.Count = v
					}
					rec.Samples = append(rec.Samples, d)
				}
			}
		}
	}
	if err := o.take(rec); err != nil {
		return pprofileotlp.NewExportResponse(), err
	}
	return pprofileotlp.NewExportResponse(), nil
}

func StartOTLP(t *testing.T) (*OTLP, string) {
	r := &OTLP{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pprofileotlp.RegisterGRPCServer(srv, r)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return r, lis.Addr().String()
}

// CPUBy sums cpu nanoseconds by a key of each sample.
func CPUBy(samples []Sample, key func(Sample) string) map[string]int64 {
	m := map[string]int64{}
	for _, s := range samples {
		m[key(s)] += s.CPU
	}
	return m
}

func sortedKeys(m map[string]int64) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func DiffMaps(got, want map[string]int64) string {
	var b strings.Builder
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "  %s: got %d, want %d\n", k, got[k], want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "  %s: got %d, want none\n", k, got[k])
		}
	}
	return b.String()
}

// Unique drops requests that repeat one received before, as a backend
// deduplicating by ID would: at-least-once delivery resends a request whose
// answer was lost, under the same IDs. It also returns how many it dropped.
func Unique(reqs []Request) (unique []Request, repeats int) {
	seen := map[string]bool{}
	for _, r := range reqs {
		if len(r.IDs) > 0 && seen[r.IDs[0]] {
			repeats++
			continue
		}
		for _, id := range r.IDs {
			seen[id] = true
		}
		unique = append(unique, r)
	}
	return unique, repeats
}
