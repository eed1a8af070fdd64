package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ember-profiler/ember/schema"
)

// The dictionary holds everything that repeats across intervals, each
// written once under an id: functions, mappings, locations, stacks (a list
// of location ids, leaf first) and label sets. Blocks of samples refer to
// stacks and label sets by id. Ids count from 1 in the order entries are
// first seen.
//
// Entries live on disk. Memory holds a cache of recently used entries
// within a byte budget (Options.DictionaryCacheBytes), so that the daemon's
// memory depends neither on the retention nor on how many processes have
// ever run (every pid is a label set). Appends find an entry by value in
// the cache, else through a hash index on disk; queries read the entries
// of their result in batches (dictfetch.go); collection finds unused
// entries from per-block records of the ids each block uses (dictgc.go).
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

func (k mappingKey) encode() []byte { return k.appendTo(nil) }

func (k mappingKey) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, k.size)
	b = binary.AppendUvarint(b, k.offset)
	b = appendString(b, k.file)
	return appendString(b, k.buildID)
}

// valueKey is what identifies an encoded entry for deduplication: the
// encoding itself, except for mappings (see mappingKey).
func valueKey(kind byte, value string) ([]byte, error) {
	if kind != kindMapping {
		return []byte(value), nil
	}
	m, err := decodeMapping([]byte(value))
	if err != nil {
		return nil, err
	}
	return m.key().encode(), nil
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

func (ls labelSet) appendTo(b []byte) []byte {
	for _, p := range ls {
		b = appendString(b, p.name)
		b = appendString(b, p.value)
	}
	return b
}

// decodeLabelSet reads a label set in place: its values are substrings of
// enc and its names the schema's own strings, so a label set costs one
// allocation, exactly sized. A day's profile of a churning host decodes a
// label set per process, and copying each name and value (into slices grown
// by append) was 35 of its 200 MiB.
func decodeLabelSet(enc string) (labelSet, error) {
	n := 0
	for rest := enc; len(rest) > 0; n++ {
		var ok bool
		if _, rest, ok = cutString(rest); !ok {
			return nil, errCorrupt
		}
		if _, rest, ok = cutString(rest); !ok {
			return nil, errCorrupt
		}
	}
	if n == 0 {
		return nil, nil
	}
	ls := make(labelSet, 0, n)
	for rest := enc; len(rest) > 0; {
		var name, value string
		name, rest, _ = cutString(rest)
		value, rest, _ = cutString(rest)
		ls = append(ls, labelPair{labelName(name), value})
	}
	return ls, nil
}

// cutString splits the length-prefixed string at the start of s from the
// rest, reading s in place.
func cutString(s string) (v, rest string, ok bool) {
	var n uint64
	i := 0
	for shift := uint(0); ; shift += 7 {
		if i == len(s) || shift > 63 {
			return "", "", false
		}
		c := s[i]
		i++
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if uint64(len(s)-i) < n {
		return "", "", false
	}
	return s[i : i+int(n)], s[i+int(n):], true
}

// labelName returns the schema's copy of a label name that has one, so
// that names do not hold on to the entry they were read from.
func labelName(name string) string {
	for _, known := range schemaLabels {
		if name == known {
			return known
		}
	}
	return strings.Clone(name)
}

var schemaLabels = []string{schema.LabelPID, schema.LabelComm, schema.LabelExe, schema.LabelCgroup,
	schema.LabelContainer, schema.LabelThreadState}

// dictionary finds and adds entries. Its write side (the pending entries,
// the read transaction of the append in progress, the used-id memo) is
// guarded by the store's lock held for writing; the cache has its own.
type dictionary struct {
	db    *badger.DB
	cache *entryCache

	functions dictTable[function]
	mappings  dictTable[mapping]
	locations dictTable[string] // encoded: mapping id, relative address, folded, lines
	stacks    dictTable[string] // encoded: location ids, leaf first
	labelSets dictTable[labelSet]

	// pending holds entries added since the last mark, to be written with
	// the block that first uses them. They are pinned in the cache until
	// then, where lookups find them.
	pending []dictEntry
	txn     *badger.Txn // reads of the append in progress
	err     error       // the first failed read since the last mark
	used    usedMemo
	encBuf  []byte // an entry encoded for lookup; copied when added
}

// dictTable is one kind of entry.
type dictTable[V any] struct {
	d      *dictionary
	kind   byte
	decode func(string) (V, error)
	last   uint32 // the highest id given out
	count  int    // entries on disk
}

// get returns the entry of an id, from the cache or the disk. Queries that
// need many read them in batches instead (dictionary.fetch).
func (t *dictTable[V]) get(id uint32) (V, bool) {
	var zero V
	enc, ok := t.d.cache.get(t.kind, id)
	if !ok {
		err := t.d.db.View(func(txn *badger.Txn) error {
			var err error
			enc, ok, err = t.d.readEntry(txn, t.kind, id)
			return err
		})
		if err != nil || !ok {
			return zero, false
		}
	}
	v, err := t.decode(enc)
	if err != nil {
		return zero, false
	}
	return v, true
}

func (t *dictTable[V]) len() int { return t.count }

type dictEntry struct {
	kind  byte
	id    uint32
	value []byte
	key   []byte // value key
}

const defaultDictionaryCacheBytes = 32 << 20

// newDictionary makes an empty dictionary; load gives it the database and
// its budget.
func newDictionary() *dictionary {
	d := &dictionary{}
	d.functions = dictTable[function]{d: d, kind: kindFunction, decode: func(s string) (function, error) { return decodeFunction([]byte(s)) }}
	d.mappings = dictTable[mapping]{d: d, kind: kindMapping, decode: func(s string) (mapping, error) { return decodeMapping([]byte(s)) }}
	d.locations = dictTable[string]{d: d, kind: kindLocation, decode: func(s string) (string, error) { return s, nil }}
	d.stacks = dictTable[string]{d: d, kind: kindStack, decode: func(s string) (string, error) { return s, nil }}
	d.labelSets = dictTable[labelSet]{d: d, kind: kindLabelSet, decode: decodeLabelSet}
	return d
}

// open gives the dictionary its database and memory budget: seven eighths
// for the entry cache, an eighth for the used-id memo.
func (d *dictionary) open(db *badger.DB, budgetBytes int64) {
	d.db = db
	d.cache = newEntryCache(budgetBytes - budgetBytes/8)
	d.used.max = int(budgetBytes / 8 / usedMemoEntryBytes)
}

// counters returns the last id and the count of a kind.
func (d *dictionary) counters(kind byte) (last *uint32, count *int) {
	switch kind {
	case kindFunction:
		return &d.functions.last, &d.functions.count
	case kindMapping:
		return &d.mappings.last, &d.mappings.count
	case kindLocation:
		return &d.locations.last, &d.locations.count
	case kindStack:
		return &d.stacks.last, &d.stacks.count
	case kindLabelSet:
		return &d.labelSets.last, &d.labelSets.count
	}
	return nil, nil
}

var dictKinds = []byte{kindFunction, kindMapping, kindLocation, kindStack, kindLabelSet}

func dictKey(kind byte, id uint32) []byte {
	k := []byte{prefixDict, kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[2:], id)
	return k
}

// dictMark is the last id and count of each kind, to roll back entries
// whose write failed.
type dictMark struct {
	last  [5]uint32
	count [5]int
}

func (d *dictionary) mark() dictMark {
	d.discardPending()
	var m dictMark
	for i, k := range dictKinds {
		last, count := d.counters(k)
		m.last[i], m.count[i] = *last, *count
	}
	return m
}

// rollback forgets entries added since m, so that ids which never reached
// the disk are not referred to.
func (d *dictionary) rollback(m dictMark) {
	for i, k := range dictKinds {
		last, count := d.counters(k)
		*last, *count = m.last[i], m.count[i]
	}
	for _, e := range d.pending {
		d.cache.remove(e.kind, e.id)
	}
	d.discardPending()
}

// committed unpins the entries written with a block.
func (d *dictionary) committed() {
	for _, e := range d.pending {
		d.cache.unpin(e.kind, e.id)
	}
	d.discardPending()
}

func (d *dictionary) discardPending() {
	d.pending = d.pending[:0]
	if d.txn != nil {
		d.txn.Discard()
		d.txn = nil
	}
	d.err = nil
}

// find returns the id and encoding of the entry with a value key: cached
// (pending ones are), or on disk.
func (d *dictionary) find(kind byte, key []byte) (uint32, string, bool) {
	if id, value, ok := d.cache.lookup(kind, key); ok {
		return id, value, true
	}
	if d.txn == nil {
		d.txn = d.db.NewTransaction(false)
	}
	id, value, ok, err := d.findOnDisk(d.txn, kind, key)
	if err != nil {
		if d.err == nil {
			d.err = fmt.Errorf("dictionary lookup: %w", err)
		}
		return 0, "", false
	}
	if ok {
		d.cache.add(kind, id, value, key, true)
	}
	return id, value, ok
}

// add gives a new entry the next id of its kind.
func (d *dictionary) add(kind byte, value, key []byte) uint32 {
	last, count := d.counters(kind)
	*last++
	*count++
	e := dictEntry{kind: kind, id: *last, value: value, key: key}
	d.pending = append(d.pending, e)
	d.cache.addPinned(kind, e.id, string(value), key)
	return e.id
}

func (d *dictionary) function(f function) uint32 {
	d.encBuf = appendFunction(d.encBuf[:0], f)
	if id, _, ok := d.find(kindFunction, d.encBuf); ok {
		return id
	}
	enc := []byte(string(d.encBuf))
	return d.add(kindFunction, enc, enc)
}

// mapping returns the id of m's pprof identity; the first mapping seen with
// that identity sets the start address that query results show.
func (d *dictionary) mapping(m mapping) (uint32, mapping) {
	d.encBuf = m.key().appendTo(d.encBuf[:0])
	if id, enc, ok := d.find(kindMapping, d.encBuf); ok {
		if stored, err := decodeMapping([]byte(enc)); err == nil {
			return id, stored
		}
	}
	return d.add(kindMapping, encodeMapping(m), []byte(string(d.encBuf))), m
}

func (d *dictionary) location(enc []byte) uint32 {
	if id, _, ok := d.find(kindLocation, enc); ok {
		return id
	}
	b := []byte(string(enc)) // enc is the caller's buffer
	return d.add(kindLocation, b, b)
}

func (d *dictionary) stack(enc []byte) uint32 {
	if id, _, ok := d.find(kindStack, enc); ok {
		return id
	}
	b := []byte(string(enc))
	return d.add(kindStack, b, b)
}

func (d *dictionary) labelSet(ls labelSet) uint32 {
	d.encBuf = ls.appendTo(d.encBuf[:0])
	if id, _, ok := d.find(kindLabelSet, d.encBuf); ok {
		return id
	}
	enc := []byte(string(d.encBuf))
	return d.add(kindLabelSet, enc, enc)
}

// DictionaryStats describe the dictionary: entries on disk, and the memory
// that holds the recently used ones, within BudgetBytes.
type DictionaryStats struct {
	Stacks, LabelSets                 int
	MemoryBytes, BudgetBytes          int64
	CacheHits, CacheMisses, Evictions uint64
}

// stats are the dictionary's figures. The caller holds the store's lock.
func (d *dictionary) stats() DictionaryStats {
	c := d.cache.stats()
	return DictionaryStats{
		Stacks: d.stacks.count, LabelSets: d.labelSets.count,
		MemoryBytes: d.memoryBytes(), BudgetBytes: c.budget + int64(d.used.max)*usedMemoEntryBytes,
		CacheHits: c.hits, CacheMisses: c.misses, Evictions: c.evictions,
	}
}

// memoryBytes is the dictionary's heap use as the cache and the used-id
// memo count it.
func (d *dictionary) memoryBytes() int64 {
	return d.cache.stats().bytes + int64(len(d.used.ids))*usedMemoEntryBytes
}

func appendFunction(b []byte, f function) []byte {
	b = appendString(b, f.name)
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
// stackLen is how many locations an encoded stack holds: each varint
// ends with the one byte of it below 0x80.
func stackLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < 0x80 {
			n++
		}
	}
	return n
}

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
