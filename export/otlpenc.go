package export

import (
	"encoding/binary"
	"strconv"

	"github.com/google/pprof/profile"
)

// otlpEncoder writes an interval's ExportProfilesServiceRequest as bytes,
// without the generated message types: building thousands of small
// messages and marshalling them cost about as much as gzip did. The schema
// is the pinned one (profiles v1development v0.4.1, see otlp.go); fields
// are written in field-number order, as the generated code writes them,
// and TestOTLPEncoderMatchesGenerated decodes the bytes against a request
// built with the generated types. Its maps and buffers are kept from one
// interval to the next.
type otlpEncoder struct {
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
	// The dictionary's tables, each its entries as tagged fields of
	// ProfilesDictionary, and how many entries each has.
	tables [otlpTables][]byte
	counts [otlpTables]int32

	resources []otlpResource
	byKey     map[string]int
	period    []byte // the PeriodType message
	line, msg []byte // scratch
	out       []byte
}

// An otlpResource is one ResourceProfiles under way: its Resource message
// and, per sample type, its Profile's fields but the samples, and the
// samples as tagged fields.
type otlpResource struct {
	resource []byte
	types    [][]byte // ValueType messages
	ids      [][]byte
	samples  [][]byte
}

// Field numbers of the pinned schema.
const (
	// ExportProfilesServiceRequest
	fReqResourceProfiles = 1
	fReqDictionary       = 2
	// ProfilesDictionary, in order; otlpTables is how many.
	fDictMapping   = 1
	fDictLocation  = 2
	fDictFunction  = 3
	fDictLink      = 4
	fDictString    = 5
	fDictAttribute = 6
	fDictStack     = 7
	otlpTables     = 7
	// ResourceProfiles, ScopeProfiles, Resource, InstrumentationScope
	fResource        = 1
	fRPScopeProfiles = 2
	fSPScope         = 1
	fSPProfiles      = 2
	fResAttributes   = 1
	fScopeName       = 1
	// Profile
	fProfSampleType = 1
	fProfSamples    = 2
	fProfTime       = 3
	fProfDuration   = 4
	fProfPeriodType = 5
	fProfPeriod     = 6
	fProfID         = 7
	// Sample
	fSmpStack      = 1
	fSmpAttributes = 2
	fSmpValues     = 4
	// KeyValue (common) and KeyValueAndUnit (dictionary), AnyValue
	fKVKey       = 1
	fKVValue     = 2
	fAnyString   = 1
	fAnyInt      = 3
	fKVUKeyIndex = 1
	fKVUValue    = 2
)

// encode returns the request for iv's series, valid until the next call.
// The series are grouped as otlpResourceKey says, a profile per sample
// type each; the dictionary's index 0 is the empty entry of every table.
func (e *otlpEncoder) encode(iv *interval) (req []byte, resources int) {
	e.reset(iv.p)
	e.period = e.period[:0]
	if iv.p.PeriodType != nil {
		e.period = e.valueType(e.period, iv.p.PeriodType)
	}
	var sampleAttrs []int32
	var attrField []byte
	for _, s := range iv.series {
		sampleAttrs = sampleAttrs[:0]
		key := otlpResourceKey(s.Labels)
		for _, l := range s.Labels {
			if name := otlpSampleAttrs[l.Name]; name != "" {
				sampleAttrs = append(sampleAttrs, e.attribute(name, l.Value))
			}
		}
		attrField = appendPacked(attrField[:0], fSmpAttributes, sampleAttrs)
		r := e.resource(iv, s.Labels, key)
		for _, smp := range s.Samples {
			stack := e.stack(smp.Location)
			for i := range r.samples {
				if smp.Value[i] == 0 {
					continue
				}
				b := appendVarintField(e.msg[:0], fSmpStack, uint64(stack))
				b = append(b, attrField...)
				b = appendTag(b, fSmpValues, 2)
				b = binary.AppendUvarint(b, uint64(uvarintLen(uint64(smp.Value[i]))))
				b = binary.AppendUvarint(b, uint64(smp.Value[i]))
				e.msg = b
				r.samples[i] = appendBytesField(r.samples[i], fProfSamples, b)
			}
		}
	}
	return e.finish(iv), len(e.resources)
}

// otlpResourceKey names the resource of a series: service.name and the
// host's labels, the labels that do not go on samples.
func otlpResourceKey(labels []Label) string {
	key := ""
	for _, l := range labels {
		switch {
		case l.Name == LabelServiceName:
			key += l.Value + "\x00"
		case otlpSampleAttrs[l.Name] == "":
			key += l.Name + "=" + l.Value + "\x00"
		}
	}
	return key
}

// resource returns the resource of a series' labels, started if new.
func (e *otlpEncoder) resource(iv *interval, labels []Label, key string) *otlpResource {
	if i, ok := e.byKey[key]; ok {
		return &e.resources[i]
	}
	if len(e.resources) < cap(e.resources) {
		e.resources = e.resources[:len(e.resources)+1]
	} else {
		e.resources = append(e.resources, otlpResource{})
	}
	r := &e.resources[len(e.resources)-1]
	e.byKey[key] = len(e.resources) - 1
	b := r.resource[:0]
	for _, l := range labels {
		switch {
		case l.Name == LabelServiceName:
			b = appendStringKV(b, otlpAttrService, l.Value)
		case otlpSampleAttrs[l.Name] != "":
		case l.Name == "host":
			b = appendStringKV(b, otlpAttrHost, l.Value)
		default:
			b = appendStringKV(b, l.Name, l.Value)
		}
	}
	r.resource = b
	n := len(iv.p.SampleType)
	r.types, r.ids, r.samples = resizeBytes(r.types, n), resizeBytes(r.ids, n), resizeBytes(r.samples, n)
	for i, st := range iv.p.SampleType {
		r.types[i] = e.valueType(r.types[i], st)
		r.ids[i] = append(r.ids[i], profileID(iv.ref.Key, key, i)...)
	}
	return r
}

// resizeBytes returns n empty byte slices, keeping what s had.
func resizeBytes(s [][]byte, n int) [][]byte {
	for len(s) < n {
		s = append(s, nil)
	}
	s = s[:n]
	for i := range s {
		s[i] = s[i][:0]
	}
	return s
}

// finish writes the request: the resources, then the dictionary.
func (e *otlpEncoder) finish(iv *interval) []byte {
	size := 0
	for _, t := range e.tables {
		size += len(t)
	}
	for _, r := range e.resources {
		size += len(r.resource) + 64
		for i := range r.samples {
			size += len(r.samples[i]) + len(r.types[i]) + len(r.ids[i]) + len(e.period) + 48
		}
	}
	out := e.out[:0]
	if cap(out) < size+16 {
		out = make([]byte, 0, size+size/8+16)
	}
	var scope []byte
	scope = appendBytesField(scope, fScopeName, []byte(otlpScopeName))
	for _, r := range e.resources {
		out = appendTag(out, fReqResourceProfiles, 2)
		start := len(out)
		out = appendBytesField(out, fResource, r.resource)
		out = appendTag(out, fRPScopeProfiles, 2)
		scopeStart := len(out)
		out = appendBytesField(out, fSPScope, scope)
		for i := range r.samples {
			out = appendTag(out, fSPProfiles, 2)
			profStart := len(out)
			out = appendBytesField(out, fProfSampleType, r.types[i])
			out = append(out, r.samples[i]...)
			if iv.p.TimeNanos != 0 {
				out = binary.LittleEndian.AppendUint64(appendTag(out, fProfTime, 1), uint64(iv.p.TimeNanos))
			}
			out = appendVarintField(out, fProfDuration, uint64(iv.p.DurationNanos))
			if iv.p.PeriodType != nil {
				out = appendBytesField(out, fProfPeriodType, e.period)
			}
			out = appendVarintField(out, fProfPeriod, uint64(iv.p.Period))
			out = appendBytesField(out, fProfID, r.ids[i])
			out = insertLen(out, profStart)
		}
		out = insertLen(out, scopeStart)
		out = insertLen(out, start)
	}
	out = appendTag(out, fReqDictionary, 2)
	dictSize := 0
	for _, t := range e.tables {
		dictSize += len(t)
	}
	out = binary.AppendUvarint(out, uint64(dictSize))
	for _, t := range e.tables {
		out = append(out, t...)
	}
	e.out = out
	return out
}

func (e *otlpEncoder) reset(p *profile.Profile) {
	if e.strings == nil {
		e.strings, e.stacks, e.attrs = map[string]int32{}, map[string]int32{}, map[[2]string]int32{}
		e.byKey = map[string]int{}
	}
	clear(e.strings)
	clear(e.stacks)
	clear(e.attrs)
	clear(e.byKey)
	e.resources = e.resources[:0]
	for i := range e.tables {
		// Index 0 of every table is the empty entry (the empty string).
		e.tables[i] = appendTag(e.tables[i][:0], i+1, 2)
		e.tables[i] = append(e.tables[i], 0)
		e.counts[i] = 1
	}
	e.strings[""] = 0
	e.locs.reset(p.Location)
	e.funcs.reset(p.Function)
	e.maps.reset(p.Mapping)
	e.locIdx = resizeInt32(e.locIdx, len(p.Location))
	e.funcIdx = resizeInt32(e.funcIdx, len(p.Function))
	e.mapIdx = resizeInt32(e.mapIdx, len(p.Mapping))
}

// release drops the references to the interval. The buffers are kept,
// except the request's when dropRequest: a request given up on (a timeout)
// may still be read by gRPC's transport.
func (e *otlpEncoder) release(dropRequest bool) {
	e.locs.release()
	e.funcs.release()
	e.maps.release()
	if dropRequest {
		e.out = nil
	}
}

// add appends an entry to a dictionary table and returns its index.
func (e *otlpEncoder) add(field int, msg []byte) int32 {
	t := field - 1
	e.tables[t] = appendBytesField(e.tables[t], field, msg)
	e.counts[t]++
	return e.counts[t] - 1
}

func (e *otlpEncoder) str(s string) int32 {
	if i, ok := e.strings[s]; ok {
		return i
	}
	i := e.add(fDictString, []byte(s))
	e.strings[s] = i
	return i
}

// valueType appends a ValueType message's fields to b.
func (e *otlpEncoder) valueType(b []byte, vt *profile.ValueType) []byte {
	b = appendVarintField(b, 1, uint64(e.str(vt.Type)))
	return appendVarintField(b, 2, uint64(e.str(vt.Unit)))
}

func (e *otlpEncoder) attribute(key, value string) int32 {
	k := [2]string{key, value}
	if i, ok := e.attrs[k]; ok {
		return i
	}
	b := appendVarintField(e.msg[:0], fKVUKeyIndex, uint64(e.str(key)))
	b = appendTag(b, fKVUValue, 2)
	start := len(b)
	if key == otlpAttrPID {
		pid, _ := strconv.ParseInt(value, 10, 64)
		b = binary.AppendUvarint(appendTag(b, fAnyInt, 0), uint64(pid))
	} else {
		b = appendBytesField(b, fAnyString, []byte(value))
	}
	b = insertLen(b, start)
	e.msg = b
	i := e.add(fDictAttribute, b)
	e.attrs[k] = i
	return i
}

func (e *otlpEncoder) stack(locs []*profile.Location) int32 {
	key := e.key[:0]
	for _, loc := range locs {
		key = binary.LittleEndian.AppendUint32(key, uint32(e.location(loc)))
	}
	e.key = key
	if i, ok := e.stacks[string(key)]; ok {
		return i
	}
	b := e.msg[:0]
	if len(locs) > 0 {
		b = appendTag(b, 1, 2)
		start := len(b)
		for j := 0; j < len(key); j += 4 {
			b = binary.AppendUvarint(b, uint64(binary.LittleEndian.Uint32(key[j:])))
		}
		b = insertLen(b, start)
	}
	e.msg = b
	i := e.add(fDictStack, b)
	e.stacks[string(key)] = i
	return i
}

func (e *otlpEncoder) location(loc *profile.Location) int32 {
	at := slot(&e.locIdx, e.locs.index(loc, loc.ID))
	if *at != 0 {
		return *at
	}
	var mapping int32
	if loc.Mapping != nil {
		mapping = e.mapping(loc.Mapping)
	}
	// The lines' functions first: they may add to the tables, not to e.msg.
	line := e.line[:0]
	for _, l := range loc.Line {
		fn := e.function(l.Function)
		var buf [32]byte // a Line's three varint fields
		lb := appendVarintField(buf[:0], 1, uint64(fn))
		lb = appendVarintField(lb, 2, uint64(l.Line))
		lb = appendVarintField(lb, 3, uint64(l.Column))
		line = appendBytesField(line, 3, lb)
	}
	e.line = line
	b := appendVarintField(e.msg[:0], 1, uint64(mapping))
	b = appendVarintField(b, 2, loc.Address)
	b = append(b, line...)
	e.msg = b
	*at = e.add(fDictLocation, b)
	return *at
}

func (e *otlpEncoder) function(f *profile.Function) int32 {
	if f == nil {
		return 0
	}
	at := slot(&e.funcIdx, e.funcs.index(f, f.ID))
	if *at != 0 {
		return *at
	}
	name, system, file := e.str(f.Name), e.str(f.SystemName), e.str(f.Filename)
	b := appendVarintField(e.msg[:0], 1, uint64(name))
	b = appendVarintField(b, 2, uint64(system))
	b = appendVarintField(b, 3, uint64(file))
	b = appendVarintField(b, 4, uint64(f.StartLine))
	e.msg = b
	*at = e.add(fDictFunction, b)
	return *at
}

func (e *otlpEncoder) mapping(m *profile.Mapping) int32 {
	at := slot(&e.mapIdx, e.maps.index(m, m.ID))
	if *at != 0 {
		return *at
	}
	file := e.str(m.File)
	var buildID int32
	if m.BuildID != "" {
		buildID = e.attribute(otlpAttrBuildID, m.BuildID)
	}
	b := appendVarintField(e.msg[:0], 1, m.Start)
	b = appendVarintField(b, 2, m.Limit)
	b = appendVarintField(b, 3, m.Offset)
	b = appendVarintField(b, 4, uint64(file))
	if buildID != 0 {
		b = appendPacked(b, 5, []int32{buildID})
	}
	e.msg = b
	*at = e.add(fDictMapping, b)
	return *at
}

// appendStringKV appends a common KeyValue with a string value as a
// repeated field (Resource.attributes).
func appendStringKV(b []byte, key, value string) []byte {
	b = appendTag(b, fResAttributes, 2)
	start := len(b)
	b = appendBytesField(b, fKVKey, []byte(key))
	b = appendTag(b, fKVValue, 2)
	b = binary.AppendUvarint(b, uint64(uvarintLen(uint64(len(value)))+1+len(value)))
	b = appendBytesField(b, fAnyString, []byte(value))
	return insertLen(b, start)
}

// appendPacked appends a packed repeated int32 field; none: nothing.
func appendPacked(b []byte, field int, vs []int32) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += uvarintLen(uint64(v))
	}
	b = binary.AppendUvarint(appendTag(b, field, 2), uint64(n))
	for _, v := range vs {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
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
