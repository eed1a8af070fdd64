package export

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"log/slog"

	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/profiles/v1development"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// OTLP profiles are still a development signal. Ember writes the schema of
// go.opentelemetry.io/proto/slim/otlp/profiles/v1development v0.4.1
// (opentelemetry-proto-go v1.11.1), which the Collector's pdata v1.71.0 /
// pprofile v0.165.0 decodes as development version 1. The slim modules are
// the same messages without the registry clashes of the full ones; the
// method name below is the full service's. The request is encoded by hand
// (otlpenc.go); the generated types decode the answer, and the tests.
const (
	otlpExportMethod   = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
	otlpVersionHeader  = "otlp-profiles-development-version"
	otlpVersion        = "1"
	otlpScopeName      = "github.com/ember-profiler/ember"
	otlpAttrHost       = "host.name"
	otlpAttrService    = "service.name"
	otlpAttrPID        = "process.pid"
	otlpAttrComm       = "process.executable.name"
	otlpAttrExe        = "process.executable.path"
	otlpAttrContainer  = "container.id"
	otlpAttrBuildID    = "process.executable.build_id.gnu"
	otlpMaxRecvMessage = 4 << 20
)

// otlpSampleAttrs maps Ember's process labels to OpenTelemetry semantic
// conventions; they go on samples. Other labels (the host's, from --label)
// go on the resource, host as host.name.
var otlpSampleAttrs = map[string]string{
	"pid": otlpAttrPID, "comm": otlpAttrComm, "exe": otlpAttrExe, "container": otlpAttrContainer,
}

// otlp sends ExportProfilesServiceRequests over gRPC.
type otlp struct {
	conn     *grpc.ClientConn
	md       metadata.MD
	callOpts []grpc.CallOption
	log      *slog.Logger
	enc      otlpEncoder
}

func newOTLP(t Target, creds credentials, tlsCfg *tls.Config, log *slog.Logger) (*otlp, error) {
	transport := insecure.NewCredentials()
	if t.URL.Scheme == "https" {
		transport = grpccreds.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(t.URL.Host, grpc.WithTransportCredentials(transport))
	if err != nil {
		return nil, err
	}
	md := metadata.Pairs(otlpVersionHeader, otlpVersion)
	for k, v := range creds.headers() {
		md.Set(k, v)
	}
	o := &otlp{conn: conn, md: md, callOpts: []grpc.CallOption{
		grpc.MaxCallRecvMsgSize(otlpMaxRecvMessage), grpc.ForceCodec(otlpCodec{}),
	}, log: log}
	if t.Gzip {
		// Profiles are sent every interval, not read back: speed over ratio.
		registerFastGzip.Do(func() { encoding.RegisterCompressor(&fastGzip{}) })
		o.callOpts = append(o.callOpts, grpc.UseCompressor("gzip"))
	}
	return o, nil
}

func (o *otlp) send(ctx context.Context, iv *interval, done func(profiles, bytes int)) error {
	req, resources := o.enc.encode(iv)
	var resp collectorpb.ExportProfilesServiceResponse
	ctx = metadata.NewOutgoingContext(ctx, o.md)
	err := o.conn.Invoke(ctx, otlpExportMethod, otlpRequestBytes(req), &resp, o.callOpts...)
	o.enc.release(err != nil)
	if err != nil {
		return err
	}
	if ps := resp.GetPartialSuccess(); ps != nil && ps.GetRejectedProfiles() > 0 {
		// Retrying what the receiver rejected would be rejected again.
		o.log.Warn("the OTLP receiver rejected some profiles", slog.Int64("rejected", ps.GetRejectedProfiles()),
			slog.String("message", ps.GetErrorMessage()))
	}
	iv.sent = len(iv.series)
	done(resources, len(req))
	return nil
}

// otlpRequestBytes is a request otlpEncoder wrote, sent as it is.
type otlpRequestBytes []byte

// otlpCodec is gRPC's protobuf codec for requests already encoded: it
// passes their bytes through and decodes the answer as usual. Its name is
// "proto", so the content type is the one receivers expect.
type otlpCodec struct{}

func (otlpCodec) Name() string { return "proto" }

func (otlpCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case otlpRequestBytes:
		return m, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("otlp codec: cannot marshal %T", v)
}

func (otlpCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("otlp codec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, m)
}

func (o *otlp) close() error { return o.conn.Close() }

// profileID names one profile of one interval the same at every try: the
// receiver can tell a resent profile from a new one.
func profileID(key int64, resource string, sampleType int) []byte {
	h := sha256.New()
	binary.Write(h, binary.BigEndian, key)
	h.Write([]byte(resource))
	binary.Write(h, binary.BigEndian, int32(sampleType))
	return h.Sum(nil)[:16]
}
