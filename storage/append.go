package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

// Append writes one interval: p is a symbolized pprof profile of the
// interval (TimeNanos and DurationNanos set; sample types any of
// schema.Known, at least one; sample string labels comm, exe, cgroup,
// container; numeric labels pid and tid). hostLabels (e.g. host=web-1)
// apply to every sample. Each sample is stored under its label set
// (schema.StoredStringLabels, pid as a string, and the host labels), its
// stack and the values of its sample types. When the
// filesystem has less free space than MinFreeDiskBytes, Append returns an
// error wrapping ErrDiskFull without writing.
func (s *Store) Append(ctx context.Context, p *profile.Profile, hostLabels map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	valueIdx, types, err := checkProfile(p)
	if err != nil {
		return fmt.Errorf("storage: append: %w", err)
	}
	host := make(labelSet, 0, len(hostLabels))
	for name, value := range hostLabels {
		if err := schema.CheckHostLabel(name); err != nil {
			return fmt.Errorf("storage: append: host %w", err)
		}
		host = append(host, labelPair{name, value})
	}
	if err := s.checkFreeSpace(); err != nil {
		return err
	}

	s.wakeCompaction() // the write may fill level 0
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishDictStats() // runs before the unlock
	if s.closed {
		return errClosed
	}
	mark := s.dict.mark()
	enc := newIntervalEncoder(s.dict, host, p)
	acc := make(sums)
	var samples int64
	for _, smp := range p.Sample {
		var r record
		var nonZero bool
		for i, v := range smp.Value {
			r.setValue(valueIdx[i], v)
			nonZero = nonZero || v != 0
		}
		if !nonZero {
			continue
		}
		r.labelSet, r.stack = enc.labelSet(smp), enc.stack(smp)
		acc.add(r)
		samples += r.count()
	}
	if err := s.dict.err; err != nil {
		s.dict.rollback(mark)
		s.writeErrors.Add(1)
		return fmt.Errorf("storage: append interval at %s: %w", time.Unix(0, p.TimeNanos).UTC().Format(time.RFC3339), err)
	}
	start := p.TimeNanos
	for {
		if _, taken := s.index.find(0, start); !taken {
			break
		}
		start++ // two intervals starting in the same nanosecond: keep both
	}
	h := blockHeader{startNanos: start, durationNanos: p.DurationNanos, periodNanos: periodOf(p), types: types}
	records := acc.records()
	parts := encodeBlock(h, records)
	dictWrites, used := s.dict.blockWrites(start, records)
	if err := s.write(dictWrites, 0, start, parts, 0); err != nil {
		s.dict.rollback(mark)
		s.writeErrors.Add(1)
		return fmt.Errorf("storage: append interval at %s: %w", time.Unix(0, p.TimeNanos).UTC().Format(time.RFC3339), err)
	}
	s.dict.committed()
	s.dict.used.recorded(hourOf(start), used)
	s.samplesWritten.Add(uint64(samples))
	s.intervalsWritten.Add(1)
	s.newestRaw = max(s.newestRaw, start)
	if err := s.rollUp(start); err != nil {
		// Queries fall back to finer blocks; the next Append retries.
		s.writeErrors.Add(1)
		s.log.Error("roll-up failed", slog.Any("error", err))
	}
	return nil
}

// checkFreeSpace refuses writes below the free-space watermark: Badger
// crashes with SIGBUS on a full disk before any write returns an error.
func (s *Store) checkFreeSpace() error {
	free, err := s.opts.freeBytes(s.opts.Dir)
	if err != nil {
		s.writeErrors.Add(1)
		return fmt.Errorf("storage: check free space: %w", err)
	}
	if floor := s.writeFloor(); free < floor {
		s.diskFullRejections.Add(1)
		if !s.diskFull.Swap(true) {
			s.log.Error("disk nearly full: not writing until space returns",
				slog.Int64("free_bytes", free), slog.Int64("min_free_bytes", floor))
		}
		return fmt.Errorf("storage: %d bytes free in %s, less than the %d kept free: %w",
			free, s.opts.Dir, floor, ErrDiskFull)
	}
	if s.diskFull.Swap(false) {
		s.log.Info("disk space returned: writing again", slog.Int64("free_bytes", free))
	}
	return nil
}

// write stores new dictionary keys (entries, their index, the ids the
// block uses) and a block's parts, removing parts of an older version of
// the block beyond the new count.
func (s *Store) write(dictWrites []keyValue, level int, start int64, parts [][]byte, oldParts uint16) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	// Dictionary keys first: a crash between batches leaves unused
	// entries, never a block that refers to missing ones.
	for _, kv := range dictWrites {
		if err := wb.Set(kv.key, kv.value); err != nil {
			return err
		}
	}
	var size int64
	for i, part := range parts {
		if err := wb.Set(blockKey(level, start, uint16(i)), part); err != nil {
			return err
		}
		size += int64(len(part))
	}
	for i := len(parts); i < int(oldParts); i++ {
		if err := wb.Delete(blockKey(level, start, uint16(i))); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.index.put(level, blockRef{startNanos: start, parts: uint16(len(parts)), bytes: size})
	return nil
}

// checkProfile checks what Append relies on, and returns where each of the
// profile's values goes in a record, and the set of its types.
func checkProfile(p *profile.Profile) (valueIdx []int, types typeSet, err error) {
	if p == nil {
		return nil, 0, errors.New("nil profile")
	}
	if p.TimeNanos <= 0 {
		return nil, 0, errors.New("profile has no TimeNanos")
	}
	if p.DurationNanos < 0 {
		return nil, 0, errors.New("profile has a negative DurationNanos")
	}
	if err := schema.CheckSampleTypes(p.SampleType); err != nil {
		return nil, 0, err
	}
	valueIdx = make([]int, len(p.SampleType))
	for i, st := range p.SampleType {
		valueIdx[i] = schema.Index(schema.Of(st))
		types |= 1 << valueIdx[i]
	}
	for i, smp := range p.Sample {
		if len(smp.Value) != len(p.SampleType) {
			return nil, 0, fmt.Errorf("sample %d has %d values for %d sample types", i, len(smp.Value), len(p.SampleType))
		}
		for _, v := range smp.Value {
			if v < 0 {
				return nil, 0, fmt.Errorf("sample %d has a negative value", i)
			}
		}
	}
	return valueIdx, types, nil
}

func periodOf(p *profile.Profile) int64 {
	if schema.Of(p.PeriodType) == schema.PeriodType && p.Period > 0 {
		return p.Period
	}
	return 0
}

// intervalEncoder turns one profile's samples into dictionary ids, caching
// per pointer, since a profile shares locations, functions and mappings
// among its samples.
type intervalEncoder struct {
	dict      *dictionary
	host      labelSet
	profile   *profile.Profile
	locations []uint32 // by profile location index, when IDs are dense; 0: not seen
	functions []uint32 // likewise
	mappings  map[*profile.Mapping]mappingRef
	stackIDs  []uint32
	buf       []byte
	locBuf    []byte
	labels    labelSet

	lastSample   *profile.Sample
	lastLabels   map[string][]string
	lastLabelSet uint32
}

type mappingRef struct {
	id    uint32
	start uint64 // of the mapping as stored
}

func newIntervalEncoder(d *dictionary, host labelSet, p *profile.Profile) *intervalEncoder {
	return &intervalEncoder{
		dict:      d,
		host:      host,
		profile:   p,
		locations: make([]uint32, len(p.Location)),
		functions: make([]uint32, len(p.Function)),
		mappings:  make(map[*profile.Mapping]mappingRef, len(p.Mapping)),
	}
}

func (e *intervalEncoder) labelSet(smp *profile.Sample) uint32 {
	// Samples of one process share their labels: check the last ones first.
	if e.lastLabels != nil && sameLabels(smp, e.lastSample) {
		return e.lastLabelSet
	}
	id := e.newLabelSet(smp)
	e.lastSample, e.lastLabels, e.lastLabelSet = smp, smp.Label, id
	return id
}

// sameLabels reports whether two samples have the same kept labels.
func sameLabels(a, b *profile.Sample) bool {
	for _, name := range schema.StoredStringLabels {
		if first(a.Label[name]) != first(b.Label[name]) {
			return false
		}
	}
	ap, bp := a.NumLabel[schema.LabelPID], b.NumLabel[schema.LabelPID]
	if len(ap) != len(bp) || len(ap) > 0 && ap[0] != bp[0] {
		return false
	}
	return first(a.Label[schema.LabelPID]) == first(b.Label[schema.LabelPID])
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (e *intervalEncoder) newLabelSet(smp *profile.Sample) uint32 {
	ls := append(e.labels[:0], e.host...)
	for _, name := range schema.StoredStringLabels {
		if v := smp.Label[name]; len(v) > 0 && v[0] != "" {
			ls = append(ls, labelPair{name, v[0]})
		}
	}
	if v := smp.NumLabel[schema.LabelPID]; len(v) > 0 {
		ls = append(ls, labelPair{schema.LabelPID, strconv.FormatInt(v[0], 10)})
	} else if v := smp.Label[schema.LabelPID]; len(v) > 0 && v[0] != "" {
		ls = append(ls, labelPair{schema.LabelPID, v[0]})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].name < ls[j].name })
	e.labels = ls
	return e.dict.labelSet(ls)
}

func (e *intervalEncoder) stack(smp *profile.Sample) uint32 {
	e.buf = e.buf[:0]
	for _, loc := range smp.Location {
		e.buf = appendUvarint(e.buf, uint64(e.location(loc)))
	}
	return e.dict.stack(e.buf)
}

func (e *intervalEncoder) location(loc *profile.Location) uint32 {
	// pprof IDs are usually 1..n in order; cache by index when they are.
	slot := -1
	if i := loc.ID - 1; i < uint64(len(e.locations)) && e.profile.Location[i] == loc {
		slot = int(i)
		if id := e.locations[slot]; id != 0 {
			return id
		}
	}
	// Encoded as encodeLocation does, into a reused buffer: most locations
	// are already in the dictionary, and the lookup then allocates nothing.
	var mappingID uint32
	address := loc.Address
	if loc.Mapping != nil {
		m := e.mapping(loc.Mapping)
		mappingID = m.id
		address = loc.Address - loc.Mapping.Start // stored relative, shown at m.start
	}
	b := appendUvarint(e.locBuf[:0], uint64(mappingID))
	b = appendUvarint(b, address)
	if loc.IsFolded {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, ln := range loc.Line {
		var fid uint32
		if ln.Function != nil {
			fid = e.function(ln.Function)
		}
		b = appendUvarint(b, uint64(fid))
		b = binary.AppendVarint(b, ln.Line)
		b = binary.AppendVarint(b, ln.Column)
	}
	e.locBuf = b
	id := e.dict.location(b)
	if slot >= 0 {
		e.locations[slot] = id
	}
	return id
}

func (e *intervalEncoder) function(f *profile.Function) uint32 {
	slot := -1
	if i := f.ID - 1; i < uint64(len(e.functions)) && e.profile.Function[i] == f {
		slot = int(i)
		if id := e.functions[slot]; id != 0 {
			return id
		}
	}
	id := e.dict.function(function{name: f.Name, systemName: f.SystemName, filename: f.Filename, startLine: f.StartLine})
	if slot >= 0 {
		e.functions[slot] = id
	}
	return id
}

func (e *intervalEncoder) mapping(m *profile.Mapping) mappingRef {
	if r, ok := e.mappings[m]; ok {
		return r
	}
	var flags uint8
	for i, b := range []bool{m.HasFunctions, m.HasFilenames, m.HasLineNumbers, m.HasInlineFrames} {
		if b {
			flags |= 1 << i
		}
	}
	id, stored := e.dict.mapping(mapping{start: m.Start, limit: m.Limit, offset: m.Offset, file: m.File, buildID: m.BuildID, flags: flags})
	r := mappingRef{id: id, start: stored.start}
	e.mappings[m] = r
	return r
}

// rollUp builds the roll-ups that the interval starting at start completes
// or changes: buckets that closed since the last roll-up (the newest
// interval has moved past them), and the interval's own buckets if it came
// late, into a bucket already rolled up.
func (s *Store) rollUp(start int64) error {
	for level := 1; level < numLevels; level++ {
		d := int64(levelDurations[level])
		bucket := floorTo(start, d)
		if bucket+d <= s.rolledThrough[level] {
			if err := s.buildRollup(level, bucket); err != nil {
				return err
			}
		}
		through := floorTo(s.newestRaw, d)
		if through <= s.rolledThrough[level] {
			continue
		}
		// Buckets holding raw intervals between the last roll-up and now.
		var buckets []int64
		for _, ref := range s.index.between(0, s.rolledThrough[level], through) {
			b := floorTo(ref.startNanos, d)
			if len(buckets) == 0 || buckets[len(buckets)-1] != b {
				buckets = append(buckets, b)
			}
		}
		for _, b := range buckets {
			if err := s.buildRollup(level, b); err != nil {
				return err
			}
		}
		s.rolledThrough[level] = through
	}
	return nil
}

// buildRollup merges the finer blocks of one bucket into its roll-up block.
func (s *Store) buildRollup(level int, bucket int64) error {
	d := int64(levelDurations[level])
	planned := s.index.plan(nil, bucket, bucket+d, level-1)
	old, hadOld := s.index.find(level, bucket)
	if len(planned) == 0 {
		if hadOld {
			return s.deleteBlocks([]plannedBlock{{level, old}})
		}
		return nil
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	recs, vals, err := s.mergePlanned(context.Background(), txn, planned, Selector{})
	if err != nil {
		return err
	}
	h := blockHeader{startNanos: bucket, durationNanos: d, periodNanos: vals.periodNanos, types: vals.types}
	return s.write(nil, level, bucket, encodeBlock(h, recs), old.parts)
}

// readBlock decodes every part of a block.
func readBlock(txn *badger.Txn, pb plannedBlock, wantGroup func(uint32) bool, visit func(record)) (blockHeader, error) {
	var h blockHeader
	for part := uint16(0); part < pb.ref.parts; part++ {
		item, err := txn.Get(blockKey(pb.level, pb.ref.startNanos, part))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue // deleted by retention since the plan was made
		}
		if err != nil {
			return h, err
		}
		err = item.Value(func(v []byte) error {
			var err error
			h, err = decodeBlock(v, wantGroup, visit)
			return err
		})
		if err != nil {
			return h, fmt.Errorf("block %x: %w", item.Key(), err)
		}
	}
	return h, nil
}

// deleteBlocks removes blocks from the database and the index.
func (s *Store) deleteBlocks(blocks []plannedBlock) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, b := range blocks {
		for part := uint16(0); part < b.ref.parts; part++ {
			if err := wb.Delete(blockKey(b.level, b.ref.startNanos, part)); err != nil {
				return err
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	for _, b := range blocks {
		s.index.remove(b.level, b.ref.startNanos)
	}
	return nil
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
