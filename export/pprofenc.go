package export

import (
	"encoding/binary"
	"math/bits"

	"github.com/google/pprof/profile"
)

// A seriesEncoder writes the series of one interval as pprof profiles
// without pprof's encoder: that one builds every series' tables afresh and
// writes index fields into the shared locations. Here a location's bytes
// are made once per interval and copied into each series that uses it
// (locations, functions and mappings keep their interval-wide IDs, which
// need only be unique within a profile), and nothing of the interval's
// profile is written to, so exporters and other readers may share it.
// Its buffers are kept from one interval to the next.
type seriesEncoder struct {
	p *profile.Profile

	locs  objectIndex[*profile.Location]
	funcs objectIndex[*profile.Function]
	maps  objectIndex[*profile.Mapping]
	// locBytes is each location's field, made when first used (nil: not yet).
	locBytes [][]byte
	locArena []byte

	// Per series: what it uses, in first-use order, marked with stamp.
	stamp                         uint32
	usedLocs, usedFuncs, usedMaps []int32
	// Strings are numbered once per interval (strIDs, strText), and each
	// series numbers those it uses in first-use order: a series costs an
	// array look-up per string, not a hash of it.
	strIDs   map[string]int32
	strText  []string
	strMarks []uint32 // the stamp of the last series that used each
	strIndex []int64  // its index in that series' string table
	strOrder []int32  // the series' string table
	funcStrs []funcStrings
	msg, smp []byte // scratch: a message, a sample
}

// funcStrings are a function's name, system name and file name as
// interval-wide string numbers, once known.
type funcStrings struct {
	known bool
	ids   [3]int32
}

// objectIndex numbers an interval's locations, functions or mappings:
// by their pprof ID when IDs are the usual 1..n of the profile's table,
// else by a map.
type objectIndex[T comparable] struct {
	table []T
	extra map[T]int32
	more  []T      // the objects of extra, by index - len(table)
	marks []uint32 // the stamp of the last series that used each
}

func (x *objectIndex[T]) reset(table []T) {
	x.table = table
	clear(x.extra)
	x.more = x.more[:0]
	x.marks = resize(x.marks, len(table))
}

func (x *objectIndex[T]) index(o T, id uint64) int32 {
	if i := id - 1; i < uint64(len(x.table)) && x.table[i] == o {
		return int32(i)
	}
	if i, ok := x.extra[o]; ok {
		return i
	}
	if x.extra == nil {
		x.extra = map[T]int32{}
	}
	i := int32(len(x.table) + len(x.extra))
	x.extra[o] = i
	x.more = append(x.more, o)
	x.marks = append(x.marks, 0)
	return i
}

// use marks i as used by the series of stamp; it reports whether it is new.
func (x *objectIndex[T]) use(i int32, stamp uint32) bool {
	if x.marks[i] == stamp {
		return false
	}
	x.marks[i] = stamp
	return true
}

func resize(s []uint32, n int) []uint32 {
	if cap(s) < n {
		return make([]uint32, n, n+n/4)
	}
	s = s[:n]
	clear(s)
	return s
}

// reset prepares the encoder for the series of p.
func (e *seriesEncoder) reset(p *profile.Profile) {
	e.p = p
	e.locs.reset(p.Location)
	e.funcs.reset(p.Function)
	e.maps.reset(p.Mapping)
	clear(e.locBytes)
	e.locBytes = e.locBytes[:0]
	e.locArena = e.locArena[:0]
	e.stamp = 0
	if e.strIDs == nil {
		e.strIDs = map[string]int32{}
	}
	clear(e.strIDs)
	e.strIDs[""] = 0
	e.strText = append(e.strText[:0], "")
	e.strMarks = append(e.strMarks[:0], 0)
	e.strIndex = append(e.strIndex[:0], 0)
	clear(e.funcStrs)
	e.funcStrs = e.funcStrs[:0]
}

// release drops the encoder's references to the interval, so that an idle
// exporter does not keep it alive.
func (e *seriesEncoder) release() {
	e.p = nil
	clear(e.strIDs)
	clear(e.strText)
	e.locs.release()
	e.funcs.release()
	e.maps.release()
}

func (x *objectIndex[T]) release() {
	x.table = nil
	clear(x.extra)
	clear(x.more)
	x.more = x.more[:0]
}

// pprof's field numbers.
const (
	fProfileSampleType  = 1
	fProfileSample      = 2
	fProfileMapping     = 3
	fProfileLocation    = 4
	fProfileFunction    = 5
	fProfileStringTable = 6
	fProfileTimeNanos   = 9
	fProfileDuration    = 10
	fProfilePeriodType  = 11
	fProfilePeriod      = 12
	fProfileDefaultType = 14
)

// encode appends the uncompressed pprof of one series' samples to out:
// the interval's types, period and span, the locations, functions and
// mappings the samples use, no sample labels.
func (e *seriesEncoder) encode(out []byte, samples []*profile.Sample) []byte {
	e.stamp++
	if e.stamp == 0 { // wrapped: old marks could match again
		clear(e.locs.marks)
		clear(e.funcs.marks)
		clear(e.maps.marks)
		clear(e.strMarks)
		e.stamp = 1
	}
	e.strOrder = e.strOrder[:0]
	e.seriesStr(0) // index 0 is the empty string
	e.usedLocs, e.usedFuncs, e.usedMaps = e.usedLocs[:0], e.usedFuncs[:0], e.usedMaps[:0]
	p := e.p

	for _, st := range p.SampleType {
		out = e.valueType(out, fProfileSampleType, st)
	}
	for _, smp := range samples {
		// Location IDs are the interval-wide index + 1.
		m := appendTag(e.smp[:0], 1, 2)
		start := len(m)
		for _, loc := range smp.Location {
			i := e.location(loc)
			m = binary.AppendUvarint(m, uint64(i)+1)
		}
		m = insertLen(m, start)
		m = appendTag(m, 2, 2)
		start = len(m)
		for _, v := range smp.Value {
			m = binary.AppendUvarint(m, uint64(v))
		}
		m = insertLen(m, start)
		e.smp = m
		out = appendBytesField(out, fProfileSample, m)
	}
	for _, i := range e.usedLocs {
		out = append(out, e.locBytes[i]...)
	}
	for _, i := range e.usedMaps {
		out = e.mapping(out, i)
	}
	for _, i := range e.usedFuncs {
		out = e.function(out, i)
	}
	out = appendVarintField(out, fProfileTimeNanos, uint64(p.TimeNanos))
	out = appendVarintField(out, fProfileDuration, uint64(p.DurationNanos))
	if p.PeriodType != nil {
		out = e.valueType(out, fProfilePeriodType, p.PeriodType)
	}
	out = appendVarintField(out, fProfilePeriod, uint64(p.Period))
	if p.DefaultSampleType != "" {
		out = appendVarintField(out, fProfileDefaultType, uint64(e.str(p.DefaultSampleType)))
	}
	for _, id := range e.strOrder {
		s := e.strText[id]
		out = appendTag(out, fProfileStringTable, 2)
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	return out
}

// location returns loc's index, marking it and what it refers to as used
// by this series, and making its bytes the first time in the interval.
func (e *seriesEncoder) location(loc *profile.Location) int32 {
	i := e.locs.index(loc, loc.ID)
	if !e.locs.use(i, e.stamp) {
		return i
	}
	e.usedLocs = append(e.usedLocs, i)
	for int(i) >= len(e.locBytes) {
		e.locBytes = append(e.locBytes, nil)
	}
	var mapping int32 = -1
	if loc.Mapping != nil {
		mapping = e.maps.index(loc.Mapping, loc.Mapping.ID)
		if e.maps.use(mapping, e.stamp) {
			e.usedMaps = append(e.usedMaps, mapping)
		}
	}
	funcIDs := [8]int32{}
	fids := funcIDs[:0]
	for _, ln := range loc.Line {
		f := int32(-1)
		if ln.Function != nil {
			f = e.funcs.index(ln.Function, ln.Function.ID)
			if e.funcs.use(f, e.stamp) {
				e.usedFuncs = append(e.usedFuncs, f)
			}
		}
		fids = append(fids, f)
	}
	if e.locBytes[i] != nil {
		return i
	}
	m := appendVarintField(e.msg[:0], 1, uint64(i)+1)
	if mapping >= 0 {
		m = appendVarintField(m, 2, uint64(mapping)+1)
	}
	m = appendVarintField(m, 3, sentAddress(loc))
	for j, ln := range loc.Line {
		m = appendTag(m, 4, 2)
		start := len(m)
		m = appendVarintField(m, 1, uint64(fids[j]+1)) // 0: no function
		m = appendVarintField(m, 2, uint64(ln.Line))
		m = appendVarintField(m, 3, uint64(ln.Column))
		m = insertLen(m, start)
	}
	if loc.IsFolded {
		m = appendVarintField(m, 5, 1)
	}
	e.msg = m
	start := len(e.locArena)
	e.locArena = appendBytesField(e.locArena, fProfileLocation, m)
	// A full slice: later appends to the arena must not write into it.
	e.locBytes[i] = e.locArena[start:len(e.locArena):len(e.locArena)]
	return i
}

// sentAddress is the address of loc as Pyroscope keeps it: none for a
// named frame of a mapping that has functions, which Pyroscope's
// distributor clears anyway (pprof.Normalize, clearAddresses). Left out,
// they spare a sixth of the bytes to encode and gzip on a backfilled hour;
// an unnamed frame keeps its address for a backend that names it.
func sentAddress(loc *profile.Location) uint64 {
	if loc.Mapping != nil && loc.Mapping.HasFunctions && len(loc.Line) > 0 {
		return 0
	}
	return loc.Address
}

func (e *seriesEncoder) mapping(out []byte, i int32) []byte {
	m := e.mapAt(i)
	b := appendVarintField(e.msg[:0], 1, uint64(i)+1)
	b = appendVarintField(b, 2, m.Start)
	b = appendVarintField(b, 3, m.Limit)
	b = appendVarintField(b, 4, m.Offset)
	b = appendVarintField(b, 5, uint64(e.str(m.File)))
	b = appendVarintField(b, 6, uint64(e.str(m.BuildID)))
	for j, on := range []bool{m.HasFunctions, m.HasFilenames, m.HasLineNumbers, m.HasInlineFrames} {
		if on {
			b = appendVarintField(b, 7+j, 1)
		}
	}
	e.msg = b
	return appendBytesField(out, fProfileMapping, b)
}

func (e *seriesEncoder) function(out []byte, i int32) []byte {
	f := e.funcAt(i)
	b := appendVarintField(e.msg[:0], 1, uint64(i)+1)
	for int(i) >= len(e.funcStrs) {
		e.funcStrs = append(e.funcStrs, funcStrings{})
	}
	fs := &e.funcStrs[i]
	if !fs.known {
		// A name is rarely another function's too: it is numbered without
		// a look-up, a repeat costing a few bytes in a series that has both.
		fs.known, fs.ids[0] = true, e.newStrID(f.Name)
		fs.ids[1] = fs.ids[0]
		if f.SystemName != f.Name {
			fs.ids[1] = e.strID(f.SystemName)
		}
		fs.ids[2] = e.strID(f.Filename)
	}
	b = appendVarintField(b, 2, uint64(e.seriesStr(fs.ids[0])))
	b = appendVarintField(b, 3, uint64(e.seriesStr(fs.ids[1])))
	b = appendVarintField(b, 4, uint64(e.seriesStr(fs.ids[2])))
	b = appendVarintField(b, 5, uint64(f.StartLine))
	e.msg = b
	return appendBytesField(out, fProfileFunction, b)
}

func (e *seriesEncoder) mapAt(i int32) *profile.Mapping   { return objectAt(&e.maps, i) }
func (e *seriesEncoder) funcAt(i int32) *profile.Function { return objectAt(&e.funcs, i) }

func objectAt[T comparable](x *objectIndex[T], i int32) T {
	if int(i) < len(x.table) {
		return x.table[i]
	}
	return x.more[int(i)-len(x.table)]
}

func (e *seriesEncoder) valueType(out []byte, field int, vt *profile.ValueType) []byte {
	b := appendVarintField(e.msg[:0], 1, uint64(e.str(vt.Type)))
	b = appendVarintField(b, 2, uint64(e.str(vt.Unit)))
	e.msg = b
	return appendBytesField(out, field, b)
}

// str returns s's index in the series' string table.
func (e *seriesEncoder) str(s string) int64 { return e.seriesStr(e.strID(s)) }

// strID numbers s within the interval.
func (e *seriesEncoder) strID(s string) int32 {
	if id, ok := e.strIDs[s]; ok {
		return id
	}
	id := e.newStrID(s)
	e.strIDs[s] = id
	return id
}

// newStrID numbers s within the interval, as a new string.
func (e *seriesEncoder) newStrID(s string) int32 {
	id := int32(len(e.strText))
	e.strText = append(e.strText, s)
	e.strMarks = append(e.strMarks, 0)
	e.strIndex = append(e.strIndex, 0)
	return id
}

// seriesStr returns the index of the interval's string id in the series'
// string table, adding it there on first use.
func (e *seriesEncoder) seriesStr(id int32) int64 {
	if e.strMarks[id] == e.stamp {
		return e.strIndex[id]
	}
	e.strMarks[id] = e.stamp
	e.strIndex[id] = int64(len(e.strOrder))
	e.strOrder = append(e.strOrder, id)
	return e.strIndex[id]
}

// Protobuf wire helpers. Zero varints are left out, as proto3 does.

func appendTag(b []byte, field, wireType int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wireType))
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.AppendUvarint(appendTag(b, field, 0), v)
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, 2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// insertLen puts the length of b[start:] before it as a varint.
func insertLen(b []byte, start int) []byte {
	n := len(b) - start
	w := uvarintLen(uint64(n))
	for range w {
		b = append(b, 0)
	}
	copy(b[start+w:], b[start:start+n])
	binary.PutUvarint(b[start:], uint64(n))
	return b
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
