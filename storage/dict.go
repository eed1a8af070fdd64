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

// dictionary is the in-memory copy of every dictionary entry. Encoded
// locations, stacks and label sets double as their own map keys.
//
// Entries are held by id in maps, not slices: the garbage collection in
// collect removes entries no stored block refers to any more (processes
// come and go, and every pid is a label set), and a slice indexed by id
// would keep a slot for every entry ever written.
type dictionary struct {
	functions   dictTable[function]
	functionIDs map[function]uint32
	mappings    dictTable[mapping]
	mappingIDs  map[mappingKey]uint32
	locations   dictTable[string] // encoded: mapping id, relative address, folded, lines
	locationIDs map[string]uint32
	stacks      dictTable[string] // encoded: location ids, leaf first
	stackIDs    map[string]uint32
	labelSets   dictTable[labelSet]
	labelSetIDs map[string]uint32

	// lastUsed is, for stacks and label sets, the newest hour of a block
	// that refers to them. Entries loaded at Open without one count as used
	// in loadedHour, the newest hour stored then.
	stackUsed, labelSetUsed map[uint32]uint32
	loadedHour              uint32

	// pending holds entries added since the last mark, to be written with
	// the block that first uses them.
	pending []dictEntry
}

// dictTable holds one kind of entry by id. Ids count from 1 in the order
// entries are added.
type dictTable[V any] struct {
	byID map[uint32]V
	last uint32 // the highest id given out
}

func (t *dictTable[V]) get(id uint32) (V, bool) {
	v, ok := t.byID[id]
	return v, ok
}

func (t *dictTable[V]) add(v V) uint32 {
	t.last++
	t.byID[t.last] = v
	return t.last
}

func (t *dictTable[V]) put(id uint32, v V) {
	t.byID[id] = v
	t.last = max(t.last, id)
}

func (t *dictTable[V]) len() int { return len(t.byID) }

// truncate removes the entries after id last, which never reached the disk.
func (t *dictTable[V]) truncate(last uint32, forget func(V)) {
	for id := last + 1; id <= t.last; id++ {
		if v, ok := t.byID[id]; ok {
			forget(v)
			delete(t.byID, id)
		}
	}
	t.last = last
}

type dictEntry struct {
	kind  byte
	id    uint32
	value []byte
}

func newDictionary() *dictionary {
	return &dictionary{
		functions:    dictTable[function]{byID: make(map[uint32]function)},
		functionIDs:  make(map[function]uint32),
		mappings:     dictTable[mapping]{byID: make(map[uint32]mapping)},
		mappingIDs:   make(map[mappingKey]uint32),
		locations:    dictTable[string]{byID: make(map[uint32]string)},
		locationIDs:  make(map[string]uint32),
		stacks:       dictTable[string]{byID: make(map[uint32]string)},
		stackIDs:     make(map[string]uint32),
		labelSets:    dictTable[labelSet]{byID: make(map[uint32]labelSet)},
		labelSetIDs:  make(map[string]uint32),
		stackUsed:    make(map[uint32]uint32),
		labelSetUsed: make(map[uint32]uint32),
	}
}

func dictKey(kind byte, id uint32) []byte {
	k := []byte{prefixDict, kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[2:], id)
	return k
}

// dictMark is the last id of each table, to roll back entries whose write
// failed.
type dictMark struct{ functions, mappings, locations, stacks, labelSets uint32 }

func (d *dictionary) mark() dictMark {
	d.pending = d.pending[:0]
	return dictMark{d.functions.last, d.mappings.last, d.locations.last, d.stacks.last, d.labelSets.last}
}

// rollback forgets entries added since m, so that ids which never reached
// the disk are not referred to.
func (d *dictionary) rollback(m dictMark) {
	d.functions.truncate(m.functions, func(f function) { delete(d.functionIDs, f) })
	d.mappings.truncate(m.mappings, func(mp mapping) { delete(d.mappingIDs, mp.key()) })
	d.locations.truncate(m.locations, func(l string) { delete(d.locationIDs, l) })
	d.stacks.truncate(m.stacks, func(s string) { delete(d.stackIDs, s) })
	d.labelSets.truncate(m.labelSets, func(ls labelSet) { delete(d.labelSetIDs, ls.encode()) })
	d.pending = d.pending[:0]
}

// used records that a block starting in hour refers to a stack and a
// label set.
func (d *dictionary) used(stack, labelSet, hour uint32) {
	if d.stackUsed[stack] < hour {
		d.stackUsed[stack] = hour
	}
	if d.labelSetUsed[labelSet] < hour {
		d.labelSetUsed[labelSet] = hour
	}
}

// unreferenced returns the entries that no block starting in oldestHour
// or later can refer to (see Store.collectDictionary); their values are
// left out.
func (d *dictionary) unreferenced(oldestHour uint32) []dictEntry {
	lastUsed := func(used map[uint32]uint32, id uint32) uint32 {
		if h, ok := used[id]; ok {
			return h
		}
		return d.loadedHour
	}
	var dead []dictEntry
	liveLocations := make(map[uint32]bool)
	var ids []uint32
	for id, enc := range d.stacks.byID {
		if lastUsed(d.stackUsed, id) < oldestHour {
			dead = append(dead, dictEntry{kind: kindStack, id: id})
			continue
		}
		ids, _ = decodeStack(ids[:0], enc)
		for _, loc := range ids {
			liveLocations[loc] = true
		}
	}
	for id := range d.labelSets.byID {
		if lastUsed(d.labelSetUsed, id) < oldestHour {
			dead = append(dead, dictEntry{kind: kindLabelSet, id: id})
		}
	}
	liveFunctions, liveMappings := make(map[uint32]bool), make(map[uint32]bool)
	for id, enc := range d.locations.byID {
		if !liveLocations[id] {
			dead = append(dead, dictEntry{kind: kindLocation, id: id})
			continue
		}
		l, err := decodeLocation(enc)
		if err != nil {
			continue // unreadable: leave what it may refer to
		}
		liveMappings[l.mappingID] = true
		for _, ln := range l.lines {
			liveFunctions[ln.functionID] = true
		}
	}
	for id := range d.functions.byID {
		if !liveFunctions[id] {
			dead = append(dead, dictEntry{kind: kindFunction, id: id})
		}
	}
	for id := range d.mappings.byID {
		if !liveMappings[id] {
			dead = append(dead, dictEntry{kind: kindMapping, id: id})
		}
	}
	return dead
}

// remove forgets entries, by id and by value.
func (d *dictionary) remove(entries []dictEntry) {
	for _, e := range entries {
		switch e.kind {
		case kindFunction:
			if f, ok := d.functions.get(e.id); ok {
				delete(d.functionIDs, f)
				delete(d.functions.byID, e.id)
			}
		case kindMapping:
			if m, ok := d.mappings.get(e.id); ok {
				delete(d.mappingIDs, m.key())
				delete(d.mappings.byID, e.id)
			}
		case kindLocation:
			if l, ok := d.locations.get(e.id); ok {
				delete(d.locationIDs, l)
				delete(d.locations.byID, e.id)
			}
		case kindStack:
			if st, ok := d.stacks.get(e.id); ok {
				delete(d.stackIDs, st)
				delete(d.stacks.byID, e.id)
				delete(d.stackUsed, e.id)
			}
		case kindLabelSet:
			if ls, ok := d.labelSets.get(e.id); ok {
				delete(d.labelSetIDs, ls.encode())
				delete(d.labelSets.byID, e.id)
				delete(d.labelSetUsed, e.id)
			}
		}
	}
}

func (d *dictionary) function(f function) uint32 {
	if id, ok := d.functionIDs[f]; ok {
		return id
	}
	id := d.functions.add(f)
	d.functionIDs[f] = id
	d.pending = append(d.pending, dictEntry{kindFunction, id, encodeFunction(f)})
	return id
}

// mapping returns the id of m's pprof identity; the first mapping seen with
// that identity sets the start address that query results show.
func (d *dictionary) mapping(m mapping) (uint32, mapping) {
	k := m.key()
	if id, ok := d.mappingIDs[k]; ok {
		stored, _ := d.mappings.get(id)
		return id, stored
	}
	id := d.mappings.add(m)
	d.mappingIDs[k] = id
	d.pending = append(d.pending, dictEntry{kindMapping, id, encodeMapping(m)})
	return id, m
}

func (d *dictionary) location(enc []byte) uint32 {
	if id, ok := d.locationIDs[string(enc)]; ok {
		return id
	}
	s := string(enc)
	id := d.locations.add(s)
	d.locationIDs[s] = id
	d.pending = append(d.pending, dictEntry{kindLocation, id, []byte(s)})
	return id
}

func (d *dictionary) stack(enc []byte) uint32 {
	if id, ok := d.stackIDs[string(enc)]; ok {
		return id
	}
	s := string(enc)
	id := d.stacks.add(s)
	d.stackIDs[s] = id
	d.pending = append(d.pending, dictEntry{kindStack, id, []byte(s)}) // enc is the caller's buffer
	return id
}

func (d *dictionary) labelSet(ls labelSet) uint32 {
	enc := ls.encode()
	if id, ok := d.labelSetIDs[enc]; ok {
		return id
	}
	id := d.labelSets.add(ls)
	d.labelSetIDs[enc] = id
	d.pending = append(d.pending, dictEntry{kindLabelSet, id, []byte(enc)})
	return id
}

// load adds one stored entry.
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
		d.functions.put(id, f)
		d.functionIDs[f] = id
	case kindMapping:
		m, err := decodeMapping(value)
		if err != nil {
			return err
		}
		d.mappings.put(id, m)
		d.mappingIDs[m.key()] = id
	case kindLocation:
		s := string(value)
		d.locations.put(id, s)
		d.locationIDs[s] = id
	case kindStack:
		s := string(value)
		d.stacks.put(id, s)
		d.stackIDs[s] = id
	case kindLabelSet:
		ls, err := decodeLabelSet(value)
		if err != nil {
			return err
		}
		d.labelSets.put(id, ls)
		d.labelSetIDs[string(value)] = id
	default:
		return fmt.Errorf("unknown dictionary entry kind %q", kind)
	}
	return nil
}

// memoryBytes estimates the dictionary's heap use, for logs and tests.
func (d *dictionary) memoryBytes() int {
	n := 0
	for _, f := range d.functions.byID {
		n += len(f.name) + len(f.systemName) + len(f.filename) + 120
	}
	for _, l := range d.locations.byID {
		n += len(l) + 64
	}
	for _, s := range d.stacks.byID {
		n += len(s) + 80
	}
	for _, ls := range d.labelSets.byID {
		n += len(ls.encode()) + 110
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
	// Varints read from the string in place: a []byte copy of every stack
	// was a tenth of a day-long query's encoding.
	for len(s) > 0 {
		var v uint64
		i := 0
		for shift := uint(0); ; shift += 7 {
			if i == len(s) || shift > 63 {
				return ids, errCorrupt
			}
			c := s[i]
			i++
			v |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
		ids = append(ids, uint32(v))
		s = s[i:]
	}
	return ids, nil
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
