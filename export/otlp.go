package export

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/google/pprof/profile"
	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/profiles/v1development"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	profilespb "go.opentelemetry.io/proto/slim/otlp/profiles/v1development"
	resourcepb "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// OTLP profiles are still a development signal. Ember speaks the schema of
// go.opentelemetry.io/proto/slim/otlp/profiles/v1development v0.4.1
// (opentelemetry-proto-go v1.11.1), which the Collector's pdata v1.71.0 /
// pprofile v0.165.0 decodes as development version 1. The slim modules are
// the same messages without the registry clashes of the full ones; the
// method name below is the full service's.
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
	// dict's indexes are kept from one interval to the next.
	dict otlpDictionary
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
	o := &otlp{conn: conn, md: md, callOpts: []grpc.CallOption{grpc.MaxCallRecvMsgSize(otlpMaxRecvMessage)}, log: log}
	if t.Gzip {
		// Profiles are sent every interval, not read back: speed over ratio.
		registerFastGzip.Do(func() { encoding.RegisterCompressor(&fastGzip{}) })
		o.callOpts = append(o.callOpts, grpc.UseCompressor("gzip"))
	}
	return o, nil
}

func (o *otlp) send(ctx context.Context, iv *interval, done func(profiles, bytes int)) error {
	req := otlpRequest(iv, &o.dict)
	defer o.dict.release()
	var resp collectorpb.ExportProfilesServiceResponse
	ctx = metadata.NewOutgoingContext(ctx, o.md)
	if err := o.conn.Invoke(ctx, otlpExportMethod, req, &resp, o.callOpts...); err != nil {
		return err
	}
	if ps := resp.GetPartialSuccess(); ps != nil && ps.GetRejectedProfiles() > 0 {
		// Retrying what the receiver rejected would be rejected again.
		o.log.Warn("the OTLP receiver rejected some profiles", slog.Int64("rejected", ps.GetRejectedProfiles()),
			slog.String("message", ps.GetErrorMessage()))
	}
	iv.sent = len(iv.series)
	done(len(req.ResourceProfiles), proto.Size(req))
	return nil
}

func (o *otlp) close() error { return o.conn.Close() }

// otlpRequest builds one request for an interval: a resource per service
// and host labels, with a profile per sample type, over one dictionary.
func otlpRequest(iv *interval, d *otlpDictionary) *collectorpb.ExportProfilesServiceRequest {
	d.reset(iv.p)
	req := &collectorpb.ExportProfilesServiceRequest{Dictionary: d.dict}
	period := d.valueType(iv.p.PeriodType)
	resources := make(map[string]*profilespb.ResourceProfiles)
	for _, s := range iv.series {
		var resAttrs []*commonpb.KeyValue
		var sampleIdx []int32
		key := ""
		for _, l := range s.Labels {
			switch {
			case l.Name == LabelServiceName:
				resAttrs = append(resAttrs, stringKV(otlpAttrService, l.Value))
				key += l.Value + "\x00"
			case otlpSampleAttrs[l.Name] != "":
				sampleIdx = append(sampleIdx, d.attribute(otlpSampleAttrs[l.Name], l.Value))
			default:
				name := l.Name
				if name == "host" {
					name = otlpAttrHost
				}
				resAttrs = append(resAttrs, stringKV(name, l.Value))
				key += l.Name + "=" + l.Value + "\x00"
			}
		}
		rp := resources[key]
		if rp == nil {
			rp = &profilespb.ResourceProfiles{
				Resource: &resourcepb.Resource{Attributes: resAttrs},
				ScopeProfiles: []*profilespb.ScopeProfiles{{
					Scope: &commonpb.InstrumentationScope{Name: otlpScopeName},
				}},
			}
			for i, st := range iv.p.SampleType {
				rp.ScopeProfiles[0].Profiles = append(rp.ScopeProfiles[0].Profiles, &profilespb.Profile{
					SampleType:   d.valueType(st),
					TimeUnixNano: uint64(iv.p.TimeNanos), DurationNano: uint64(iv.p.DurationNanos),
					PeriodType: period, Period: iv.p.Period,
					ProfileId: profileID(iv.ref.Key, key, i),
				})
			}
			resources[key] = rp
			req.ResourceProfiles = append(req.ResourceProfiles, rp)
		}
		for _, smp := range s.Samples {
			stack := d.stack(smp.Location)
			for i, prof := range rp.ScopeProfiles[0].Profiles {
				if smp.Value[i] == 0 {
					continue
				}
				prof.Samples = append(prof.Samples, d.sample(stack, sampleIdx, smp.Value[i]))
			}
		}
	}
	return req
}

// profileID names one profile of one interval the same at every try: the
// receiver can tell a resent profile from a new one.
func profileID(key int64, resource string, sampleType int) []byte {
	h := sha256.New()
	binary.Write(h, binary.BigEndian, key)
	h.Write([]byte(resource))
	binary.Write(h, binary.BigEndian, int32(sampleType))
	return h.Sum(nil)[:16]
}

func stringKV(key, value string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: key, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: value}}}
}

// otlpDictionary fills the request's shared tables. Index 0 of every table
// is the empty entry, as the profiles schema requires. Its maps and
// buffers are reused from one interval to the next; the tables it fills
// are the request's own.
type otlpDictionary struct {
	dict    *profilespb.ProfilesDictionary
	strings map[string]int32
	stacks  map[string]int32
	attrs   map[[2]string]int32
	// The interval's locations, functions and mappings, numbered as the
	// series encoder does, and their table indices (0: not yet in it).
	locs    objectIndex[*profile.Location]
	funcs   objectIndex[*profile.Function]
	maps    objectIndex[*profile.Mapping]
	locIdx  []int32
	funcIdx []int32
	mapIdx  []int32
	key     []byte
	// The request's messages are allocated in slabs, not one by one.
	samples   slab[profilespb.Sample]
	locations slab[profilespb.Location]
	lines     slab[profilespb.Line]
	stackMsgs slab[profilespb.Stack]
	functions slab[profilespb.Function]
	values    []int64
	indices   []int32
}

// A slab hands out the elements of slices made otlpSlab at a time.
type slab[T any] struct{ free []T }

func (s *slab[T]) next() *T {
	if len(s.free) == 0 {
		s.free = make([]T, otlpSlab)
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// int32s returns n int32s from d.indices.
func (d *otlpDictionary) int32s(n int) []int32 {
	if len(d.indices) < n {
		d.indices = make([]int32, max(n, 8*otlpSlab))
	}
	out := d.indices[:n:n]
	d.indices = d.indices[n:]
	return out
}

func (d *otlpDictionary) dropSlabs() {
	d.samples.free, d.locations.free, d.lines.free, d.stackMsgs.free, d.functions.free = nil, nil, nil, nil, nil
	d.values, d.indices = nil, nil
}

func (d *otlpDictionary) reset(p *profile.Profile) {
	d.dict = &profilespb.ProfilesDictionary{
		MappingTable: []*profilespb.Mapping{{}}, LocationTable: []*profilespb.Location{{}},
		FunctionTable: []*profilespb.Function{{}}, LinkTable: []*profilespb.Link{{}},
		StringTable: []string{""}, AttributeTable: []*profilespb.KeyValueAndUnit{{}},
		StackTable: []*profilespb.Stack{{}},
	}
	if d.strings == nil {
		d.strings, d.stacks, d.attrs = map[string]int32{}, map[string]int32{}, map[[2]string]int32{}
	}
	clear(d.strings)
	clear(d.stacks)
	clear(d.attrs)
	d.strings[""] = 0
	d.locs.reset(p.Location)
	d.funcs.reset(p.Function)
	d.maps.reset(p.Mapping)
	d.locIdx = resizeInt32(d.locIdx, len(p.Location))
	d.funcIdx = resizeInt32(d.funcIdx, len(p.Function))
	d.mapIdx = resizeInt32(d.mapIdx, len(p.Mapping))
	d.dropSlabs()
}

// release drops the references to the interval and the request sent.
func (d *otlpDictionary) release() {
	d.dict = nil
	d.dropSlabs()
	d.locs.release()
	d.funcs.release()
	d.maps.release()
}

func resizeInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n, n+n/4)
	}
	s = s[:n]
	clear(s)
	return s
}

// slot grows idx to hold index i.
func slot(idx *[]int32, i int32) *int32 {
	for int(i) >= len(*idx) {
		*idx = append(*idx, 0)
	}
	return &(*idx)[i]
}

// otlpSlab is how many samples are allocated at a time.
const otlpSlab = 512

func (d *otlpDictionary) sample(stack int32, attrs []int32, value int64) *profilespb.Sample {
	if len(d.values) == 0 {
		d.values = make([]int64, otlpSlab)
	}
	smp := d.samples.next()
	d.values[0] = value
	smp.StackIndex, smp.AttributeIndices, smp.Values = stack, attrs, d.values[:1:1]
	d.values = d.values[1:]
	return smp
}

func (d *otlpDictionary) str(s string) int32 {
	if i, ok := d.strings[s]; ok {
		return i
	}
	i := int32(len(d.dict.StringTable))
	d.dict.StringTable = append(d.dict.StringTable, s)
	d.strings[s] = i
	return i
}

func (d *otlpDictionary) valueType(vt *profile.ValueType) *profilespb.ValueType {
	if vt == nil {
		return nil
	}
	return &profilespb.ValueType{TypeStrindex: d.str(vt.Type), UnitStrindex: d.str(vt.Unit)}
}

func (d *otlpDictionary) attribute(key, value string) int32 {
	k := [2]string{key, value}
	if i, ok := d.attrs[k]; ok {
		return i
	}
	i := int32(len(d.dict.AttributeTable))
	kv := &profilespb.KeyValueAndUnit{KeyStrindex: d.str(key)}
	if key == otlpAttrPID {
		var pid int64
		fmt.Sscan(value, &pid)
		kv.Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: pid}}
	} else {
		kv.Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: value}}
	}
	d.dict.AttributeTable = append(d.dict.AttributeTable, kv)
	d.attrs[k] = i
	return i
}

func (d *otlpDictionary) stack(locs []*profile.Location) int32 {
	key := d.key[:0]
	for _, loc := range locs {
		key = binary.LittleEndian.AppendUint32(key, uint32(d.location(loc)))
	}
	d.key = key
	if i, ok := d.stacks[string(key)]; ok {
		return i
	}
	ids := d.int32s(len(locs))
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint32(key[4*i:]))
	}
	i := int32(len(d.dict.StackTable))
	st := d.stackMsgs.next()
	st.LocationIndices = ids
	d.dict.StackTable = append(d.dict.StackTable, st)
	d.stacks[string(key)] = i
	return i
}

func (d *otlpDictionary) location(loc *profile.Location) int32 {
	at := slot(&d.locIdx, d.locs.index(loc, loc.ID))
	if *at != 0 {
		return *at
	}
	l := d.locations.next()
	l.Address = loc.Address
	if loc.Mapping != nil {
		l.MappingIndex = d.mapping(loc.Mapping)
	}
	for _, line := range loc.Line {
		ln := d.lines.next()
		ln.FunctionIndex, ln.Line, ln.Column = d.function(line.Function), line.Line, line.Column
		l.Lines = append(l.Lines, ln)
	}
	i := int32(len(d.dict.LocationTable))
	d.dict.LocationTable = append(d.dict.LocationTable, l)
	*at = i
	return i
}

func (d *otlpDictionary) function(f *profile.Function) int32 {
	if f == nil {
		return 0
	}
	at := slot(&d.funcIdx, d.funcs.index(f, f.ID))
	if *at != 0 {
		return *at
	}
	i := int32(len(d.dict.FunctionTable))
	fn := d.functions.next()
	fn.NameStrindex, fn.SystemNameStrindex = d.str(f.Name), d.str(f.SystemName)
	fn.FilenameStrindex, fn.StartLine = d.str(f.Filename), f.StartLine
	d.dict.FunctionTable = append(d.dict.FunctionTable, fn)
	*at = i
	return i
}

func (d *otlpDictionary) mapping(m *profile.Mapping) int32 {
	at := slot(&d.mapIdx, d.maps.index(m, m.ID))
	if *at != 0 {
		return *at
	}
	mp := &profilespb.Mapping{MemoryStart: m.Start, MemoryLimit: m.Limit, FileOffset: m.Offset, FilenameStrindex: d.str(m.File)}
	if m.BuildID != "" {
		mp.AttributeIndices = []int32{d.attribute("process.executable.build_id.gnu", m.BuildID)}
	}
	i := int32(len(d.dict.MappingTable))
	d.dict.MappingTable = append(d.dict.MappingTable, mp)
	*at = i
	return i
}
