package export

import (
	"encoding/binary"
	"fmt"

	"github.com/google/pprof/profile"
	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/profiles/v1development"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	profilespb "go.opentelemetry.io/proto/slim/otlp/profiles/v1development"
	resourcepb "go.opentelemetry.io/proto/slim/otlp/resource/v1"
)

// The request as the generated types build it: what the exporter sent
// before otlpEncoder, kept here as the reference the encoder's bytes must
// decode to.

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
}

// release drops the references to the interval and the request sent.
func (d *otlpDictionary) release() {
	d.dict = nil
	d.locs.release()
	d.funcs.release()
	d.maps.release()
}

func (d *otlpDictionary) sample(stack int32, attrs []int32, value int64) *profilespb.Sample {
	return &profilespb.Sample{StackIndex: stack, AttributeIndices: attrs, Values: []int64{value}}
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
	ids := make([]int32, len(locs))
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint32(key[4*i:]))
	}
	i := int32(len(d.dict.StackTable))
	st := &profilespb.Stack{}
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
	l := &profilespb.Location{}
	l.Address = loc.Address
	if loc.Mapping != nil {
		l.MappingIndex = d.mapping(loc.Mapping)
	}
	for _, line := range loc.Line {
		ln := &profilespb.Line{}
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
	fn := &profilespb.Function{}
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
		mp.AttributeIndices = []int32{d.attribute(otlpAttrBuildID, m.BuildID)}
	}
	i := int32(len(d.dict.MappingTable))
	d.dict.MappingTable = append(d.dict.MappingTable, mp)
	*at = i
	return i
}
