package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The dictionary holds everything that repeats across intervals, each
// written once under an id: functions, mappings, locations, stacks (a list
// of location ids, leaf first) and label sets. Blocks of samples refer to
// stacks and label sets by id. Ids count from 1 in the order entries are
// first seen; the whole dictionary is kept in memory (a few MiB for tens of
// thousands of stacks) to deduplicate on write and to decode queries.
//
// Locations are stored relative to their mapping, and mappings are keyed
// by what pprof's Merge keys them on (file, build id, size, offset), so the
// same code in many processes of one program is one location, whatever the
// address the program was loaded at.

// dictionary entry kinds, the second byte of their keys.
const (
	kindFunction byte = 'f'
	kindMapping  byte = 'm'
	kindLocation byte = 'l'
	kindStack    byte = 's'
	kindLabelSet byte = 'L'
)

type function struct {
	name, systemName, filename string
	startLine                  int64
}

type mapping struct {
	start, limit, offset uint64
	file, buildID        string
	flags                uint8 // hasFunctions, hasFilenames, hasLineNumbers, hasInlineFrames
}

// mappingKey is how pprof's Merge identifies a mapping.
type mappingKey struct {
	size, offset  uint64
	file, buildID string
}

func (m mapping) key() mappingKey {
	return mappingKey{size: m.limit - m.start, offset: m.offset, file: m.file, buildID: m.buildID}
}

// labelPair is one label; a labelSet is sorted by name.
type labelPair struct{ name, value string }

type labelSet []labelPair

func (ls labelSet) get(name string) string {
	i := sort.Search(len(ls), func(i int) bool { return ls[i].name >= name })
	if i < len(ls) && ls[i].name == name {
		return ls[i].value
	}
	return ""
}

func (ls labelSet) encode() string {
	var b []byte
	for _, p := range ls {
		b = appendString(b, p.name)
		b = appendString(b, p.value)
	}
	return string(b)
}

func decodeLabelSet(b []byte) (labelSet, error) {
	var ls labelSet
	r := reader{b: b}
	for !r.done() {
		name, value := r.string(), r.string()
		ls = append(ls, labelPair{name, value})
	}
	return ls, r.err
}

// dictionary is the in-memory copy of every dictionary entry. Entry i has id
// i+1. Encoded locations, stacks and label sets double as their own map keys.
type dictionary struct {
	functions   []function
	functionIDs map[function]uint32
	mappings    []mapping
	mappingIDs  map[mappingKey]uint32
	locations   []string // encoded: mapping id, relative address, folded, lines
	locationIDs map[string]uint32
	stacks      []string // encoded: location ids, leaf first
	stackIDs    map[string]uint32
	labelSets   []labelSet
	labelSetIDs map[string]uint32

	// pending holds entries added since the last mark, to be written with
	// the block that first uses them.
	pending []dictEntry
}

type dictEntry struct {
	kind  byte
	id    uint32
	value []byte
}

func newDictionary() *dictionary {
	return &dictionary{
		functionIDs: make(map[function]uint32),
		mappingIDs:  make(map[mappingKey]uint32),
		locationIDs: make(map[string]uint32),
		stackIDs:    make(map[string]uint32),
		labelSetIDs: make(map[string]uint32),
	}
}

func dictKey(kind byte, id uint32) []byte {
	k := []byte{prefixDict, kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[2:], id)
	return k
}

// dictMark is the size of each table, to roll back entries whose write failed.
type dictMark struct{ functions, mappings, locations, stacks, labelSets int }

func (d *dictionary) mark() dictMark {
	d.pending = d.pending[:0]
	return dictMark{len(d.functions), len(d.mappings), len(d.locations), len(d.stacks), len(d.labelSets)}
}

// rollback forgets entries added since m, so that ids which never reached
// the disk are not referred to.
func (d *dictionary) rollback(m dictMark) {
	for _, f := range d.functions[m.functions:] {
		delete(d.functionIDs, f)
	}
	d.functions = d.functions[:m.functions]
	for _, mp := range d.mappings[m.mappings:] {
		delete(d.mappingIDs, mp.key())
	}
	d.mappings = d.mappings[:m.mappings]
	for _, l := range d.locations[m.locations:] {
		delete(d.locationIDs, l)
	}
	d.locations = d.locations[:m.locations]
	for _, s := range d.stacks[m.stacks:] {
		delete(d.stackIDs, s)
	}
	d.stacks = d.stacks[:m.stacks]
	for _, ls := range d.labelSets[m.labelSets:] {
		delete(d.labelSetIDs, ls.encode())
	}
	d.labelSets = d.labelSets[:m.labelSets]
	d.pending = d.pending[:0]
}

func (d *dictionary) function(f function) uint32 {
	if id, ok := d.functionIDs[f]; ok {
		return id
	}
	d.functions = append(d.functions, f)
	id := uint32(len(d.functions))
	d.functionIDs[f] = id
	d.pending = append(d.pending, dictEntry{kindFunction, id, encodeFunction(f)})
	return id
}

// mapping returns the id of m's pprof identity; the first mapping seen with
// that identity sets the start address that query results show.
func (d *dictionary) mapping(m mapping) (uint32, mapping) {
	k := m.key()
	if id, ok := d.mappingIDs[k]; ok {
		return id, d.mappings[id-1]
	}
	d.mappings = append(d.mappings, m)
	id := uint32(len(d.mappings))
	d.mappingIDs[k] = id
	d.pending = append(d.pending, dictEntry{kindMapping, id, encodeMapping(m)})
	return id, m
}

func (d *dictionary) location(enc []byte) uint32 {
	if id, ok := d.locationIDs[string(enc)]; ok {
		return id
	}
	s := string(enc)
	d.locations = append(d.locations, s)
	id := uint32(len(d.locations))
	d.locationIDs[s] = id
	d.pending = append(d.pending, dictEntry{kindLocation, id, []byte(s)})
	return id
}

func (d *dictionary) stack(enc []byte) uint32 {
	if id, ok := d.stackIDs[string(enc)]; ok {
		return id
	}
	s := string(enc)
	d.stacks = append(d.stacks, s)
	id := uint32(len(d.stacks))
	d.stackIDs[s] = id
	d.pending = append(d.pending, dictEntry{kindStack, id, []byte(s)}) // enc is the caller's buffer
	return id
}

func (d *dictionary) labelSet(ls labelSet) uint32 {
	enc := ls.encode()
	if id, ok := d.labelSetIDs[enc]; ok {
		return id
	}
	d.labelSets = append(d.labelSets, ls)
	id := uint32(len(d.labelSets))
	d.labelSetIDs[enc] = id
	d.pending = append(d.pending, dictEntry{kindLabelSet, id, []byte(enc)})
	return id
}

// load adds one stored entry. Entries arrive in key order, so ids ascend
// within a kind; a gap (an id whose write failed after a later one's
// succeeded) is filled with an entry nothing refers to.
func (d *dictionary) load(kind byte, id uint32, value []byte) error {
	if id == 0 {
		return errors.New("dictionary entry with id 0")
	}
	switch kind {
	case kindFunction:
		f, err := decodeFunction(value)
		if err != nil {
			return err
		}
		for uint32(len(d.functions)) < id-1 {
			d.functions = append(d.functions, function{})
		}
		d.functions = append(d.functions, f)
		d.functionIDs[f] = id
	case kindMapping:
		m, err := decodeMapping(value)
		if err != nil {
			return err
		}
		for uint32(len(d.mappings)) < id-1 {
			d.mappings = append(d.mappings, mapping{})
		}
		d.mappings = append(d.mappings, m)
		d.mappingIDs[m.key()] = id
	case kindLocation:
		for uint32(len(d.locations)) < id-1 {
			d.locations = append(d.locations, "")
		}
		s := string(value)
		d.locations = append(d.locations, s)
		d.locationIDs[s] = id
	case kindStack:
		for uint32(len(d.stacks)) < id-1 {
			d.stacks = append(d.stacks, "")
		}
		s := string(value)
		d.stacks = append(d.stacks, s)
		d.stackIDs[s] = id
	case kindLabelSet:
		ls, err := decodeLabelSet(value)
		if err != nil {
			return err
		}
		for uint32(len(d.labelSets)) < id-1 {
			d.labelSets = append(d.labelSets, nil)
		}
		d.labelSets = append(d.labelSets, ls)
		d.labelSetIDs[string(value)] = id
	default:
		return fmt.Errorf("unknown dictionary entry kind %q", kind)
	}
	return nil
}

// memoryBytes estimates the dictionary's heap use, for logs and tests.
func (d *dictionary) memoryBytes() int {
	n := 0
	for _, f := range d.functions {
		n += len(f.name) + len(f.systemName) + len(f.filename) + 120
	}
	for _, l := range d.locations {
		n += len(l) + 64
	}
	for _, s := range d.stacks {
		n += len(s) + 64
	}
	for _, ls := range d.labelSets {
		n += len(ls.encode()) + 100
	}
	return n
}

func encodeFunction(f function) []byte {
	b := appendString(nil, f.name)
	b = appendString(b, f.systemName)
	b = appendString(b, f.filename)
	return binary.AppendVarint(b, f.startLine)
}

func decodeFunction(b []byte) (function, error) {
	r := reader{b: b}
	f := function{name: r.string(), systemName: r.string(), filename: r.string(), startLine: r.varint()}
	return f, r.err
}

func encodeMapping(m mapping) []byte {
	b := binary.AppendUvarint(nil, m.start)
	b = binary.AppendUvarint(b, m.limit)
	b = binary.AppendUvarint(b, m.offset)
	b = appendString(b, m.file)
	b = appendString(b, m.buildID)
	return append(b, m.flags)
}

func decodeMapping(b []byte) (mapping, error) {
	r := reader{b: b}
	m := mapping{start: r.uvarint(), limit: r.uvarint(), offset: r.uvarint(), file: r.string(), buildID: r.string(), flags: r.byte()}
	return m, r.err
}

// location is a decoded location entry.
type location struct {
	mappingID uint32
	address   uint64 // relative to the mapping's start when mappingID != 0
	folded    bool
	lines     []locationLine
}

type locationLine struct {
	functionID   uint32
	line, column int64
}

func encodeLocation(b []byte, l location) []byte {
	b = binary.AppendUvarint(b, uint64(l.mappingID))
	b = binary.AppendUvarint(b, l.address)
	folded := byte(0)
	if l.folded {
		folded = 1
	}
	b = append(b, folded)
	for _, ln := range l.lines {
		b = binary.AppendUvarint(b, uint64(ln.functionID))
		b = binary.AppendVarint(b, ln.line)
		b = binary.AppendVarint(b, ln.column)
	}
	return b
}

func decodeLocation(s string) (location, error) {
	r := reader{b: []byte(s)}
	l := location{mappingID: uint32(r.uvarint()), address: r.uvarint(), folded: r.byte() == 1}
	for !r.done() {
		l.lines = append(l.lines, locationLine{functionID: uint32(r.uvarint()), line: r.varint(), column: r.varint()})
	}
	return l, r.err
}

// decodeStack appends a stack's location ids to ids.
func decodeStack(ids []uint32, s string) ([]uint32, error) {
	r := reader{b: []byte(s)}
	for !r.done() {
		ids = append(ids, uint32(r.uvarint()))
	}
	return ids, r.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes varints and strings, remembering the first error so that
// callers check once at the end.
type reader struct {
	b   []byte
	err error
}

var errCorrupt = errors.New("corrupt record")

func (r *reader) done() bool { return len(r.b) == 0 || r.err != nil }

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	return string(r.bytes(r.uvarint()))
}

// labelSetString renders a label set for messages.
func labelSetString(ls labelSet) string {
	parts := make([]string, len(ls))
	for i, p := range ls {
		parts[i] = fmt.Sprintf("%s=%q", p.name, p.value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
