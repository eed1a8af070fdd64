package export

import (
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

// The receivers decode with the backends' own API modules: Pyroscope's
// Connect handler for push.v1, the Collector's pdata gRPC server for OTLP
// profiles. Each reduces what it got to decoded samples.

// A decodedSample is one sample as a backend sees it.
type decodedSample struct {
	labels map[string]string // series or resource and sample attributes
	stack  string            // function names, root first, joined by ";"
	cpu    int64             // cpu nanoseconds
	count  int64             // samples
}

// A request as received.
type received struct {
	header    http.Header // or gRPC metadata
	timeNanos int64
	types     []string // "type/unit", and the period type last
	ids       []string // dedupe IDs (Pyroscope) or profile IDs (OTLP)
	samples   []decodedSample
}

// receiver collects requests; fail, when set, answers a request instead.
type receiver struct {
	mu   sync.Mutex
	got  []received
	fail func(n int) error // n counts requests from 0
	n    int
}

func (r *receiver) take(rec received) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n++
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return err
		}
	}
	r.got = append(r.got, rec)
	return nil
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) tries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// pyroscopeReceiver serves push.v1.PusherService.
type pyroscopeReceiver struct {
	pushv1connect.UnimplementedPusherServiceHandler
	receiver
	t *testing.T
}

func (p *pyroscopeReceiver) Push(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	rec := received{header: req.Header()}
	for _, s := range req.Msg.Series {
		labels := map[string]string{}
		for _, l := range s.Labels {
			labels[l.Name] = l.Value
		}
		for _, raw := range s.Samples {
			rec.ids = append(rec.ids, raw.ID)
			prof, err := profile.ParseData(raw.RawProfile)
			if err != nil {
				p.t.Errorf("pyroscope receiver: %v", err)
				return nil, connect.NewError(connect.CodeInvalidArgument, err)
			}
			rec.timeNanos = prof.TimeNanos
			rec.types = nil
			for _, st := range prof.SampleType {
				rec.types = append(rec.types, st.Type+"/"+st.Unit)
			}
			rec.types = append(rec.types, prof.PeriodType.Type+"/"+prof.PeriodType.Unit)
			for _, smp := range prof.Sample {
				if len(smp.Label)+len(smp.NumLabel) > 0 {
					p.t.Errorf("sample labels sent to Pyroscope: %v %v", smp.Label, smp.NumLabel)
				}
				rec.samples = append(rec.samples, decodedSample{labels: labels, stack: pprofStack(smp),
					count: smp.Value[0], cpu: smp.Value[1]})
			}
		}
	}
	if err := p.take(rec); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

func pprofStack(smp *profile.Sample) string {
	var names []string
	for i := len(smp.Location) - 1; i >= 0; i-- {
		for j := len(smp.Location[i].Line) - 1; j >= 0; j-- {
			names = append(names, smp.Location[i].Line[j].Function.Name)
		}
	}
	return strings.Join(names, ";")
}

// startPyroscope serves a receiver over TLS (the test server's own CA) or
// plain HTTP; wrap, if set, sits in front of the Connect handler.
func startPyroscope(t *testing.T, tlsOn bool, wrap func(http.Handler) http.Handler) (*pyroscopeReceiver, *httptest.Server) {
	r := &pyroscopeReceiver{t: t}
	path, h := pushv1connect.NewPusherServiceHandler(r)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	var handler http.Handler = mux
	if wrap != nil {
		handler = wrap(mux)
	}
	srv := httptest.NewUnstartedServer(handler)
	if tlsOn {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return r, srv
}

// otlpReceiver serves the Collector's OTLP profiles gRPC service.
type otlpReceiver struct {
	pprofileotlp.UnimplementedGRPCServer
	receiver
}

func (o *otlpReceiver) Export(ctx context.Context, req pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	rec := received{header: http.Header{}}
	for k, v := range md {
		rec.header[http.CanonicalHeaderKey(k)] = v
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
				rec.timeNanos = int64(prof.Time())
				st := str(prof.SampleType().TypeStrindex()) + "/" + str(prof.SampleType().UnitStrindex())
				rec.types = append(rec.types, st)
				rec.ids = append(rec.ids, prof.ProfileID().String())
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
					d := decodedSample{labels: labels, stack: strings.Join(names, ";")}
					v := smp.Values().At(0)
					if st == "cpu/nanoseconds" {
						d.cpu = v
					} else {
						d.count = v
					}
					rec.samples = append(rec.samples, d)
				}
			}
		}
	}
	if err := o.take(rec); err != nil {
		return pprofileotlp.NewExportResponse(), err
	}
	return pprofileotlp.NewExportResponse(), nil
}

func startOTLP(t *testing.T) (*otlpReceiver, string) {
	r := &otlpReceiver{}
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

// cpuBy sums cpu nanoseconds by a key of each sample.
func cpuBy(samples []decodedSample, key func(decodedSample) string) map[string]int64 {
	m := map[string]int64{}
	for _, s := range samples {
		m[key(s)] += s.cpu
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

func diffMaps(got, want map[string]int64) string {
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
