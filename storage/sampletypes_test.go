package storage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage/internal/backfill"
)

// A store written by Ember before blocks had sample types (main at
// 10e4cdc): 8 intervals of 10 s from t0 of
// backfill.Config{Seed: 1, Processes: 4, StacksPerProgram: 10, CPUs: 1,
// FrequencyHz: 20}, host label host=h, closed cleanly; and the
// WriteProfile answer of that build for [t0, t0+1h).
const (
	oldStoreFixture = "testdata/store-v1.tar.gz"
	oldStoreAnswer  = "testdata/store-v1.query.pb.gz"
)

func oldStoreGenerator() *backfill.Generator {
	return backfill.New(backfill.Config{Seed: 1, Processes: 4, StacksPerProgram: 10, CPUs: 1, FrequencyHz: 20})
}

func TestOldStoreReadsTheSame(t *testing.T) {
	dir := t.TempDir()
	untar(t, oldStoreFixture, dir)
	s := openTest(t, Options{Dir: dir})
	ctx := context.Background()
	q := ProfileQuery{From: t0, To: t0.Add(time.Hour)}

	var got bytes.Buffer
	if err := s.WriteProfile(ctx, q, &got); err != nil {
		t.Fatal(err)
	}
	if want := gunzipFile(t, oldStoreAnswer); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("WriteProfile of the old store: %d bytes, differs from the old build's %d", got.Len(), len(want))
	}

	g := oldStoreGenerator()
	var ps []*profile.Profile
	for i := range 8 {
		ps = append(ps, g.Interval(t0.Add(time.Duration(i)*10*time.Second), 10*time.Second))
	}
	host := map[string]string{"host": "h"}
	p, err := s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTypes(p, schema.Samples, schema.CPU) {
		t.Errorf("old store: sample types %v, want samples/count, cpu/nanoseconds", p.SampleType)
	}
	if c, w := canonical(p, nil), mergeCanonical(t, ps, host); c != w {
		t.Error("old store: query differs from the merge of the intervals written")
	}

	// New intervals with a wall value join the old ones, in the same
	// minute's roll-up and the next.
	for i := 8; i < 14; i++ {
		w := withWall(g.Interval(t0.Add(time.Duration(i)*10*time.Second), 10*time.Second), int64(i))
		if err := s.Append(ctx, w, host); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, w)
	}
	p, err = s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTypes(p, schema.Samples, schema.CPU, schema.Wall) {
		t.Errorf("old store and wall intervals: sample types %v", p.SampleType)
	}
	if c, w := canonicalValues(p, nil), canonicalValues(mergeTyped(t, ps), host); c != w {
		t.Errorf("old store and wall intervals: query differs from the merge of the intervals written\n%s", firstDiff(c, w))
	}
}

// The encoder Ember used before sample types, kept to show that a block
// of CPU samples is written byte for byte as it was.
func encodeBlockV1(h blockHeader, recs []record) [][]byte {
	header := func() []byte {
		b := []byte{1}
		b = binary.AppendVarint(b, h.startNanos)
		b = binary.AppendUvarint(b, uint64(h.durationNanos))
		return binary.AppendUvarint(b, uint64(h.periodNanos))
	}
	var parts [][]byte
	part := header()
	var prevLabelSet uint32
	var body []byte
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].labelSet == recs[i].labelSet {
			j++
		}
		body = body[:0]
		var prevStack uint32
		for _, r := range recs[i:j] {
			body = binary.AppendUvarint(body, uint64(r.stack-prevStack))
			body = binary.AppendUvarint(body, uint64(r.count()))
			body = binary.AppendVarint(body, r.cpuNanos()-r.count()*h.periodNanos)
			prevStack = r.stack
		}
		if len(part) > 32 && len(part)+len(body) > maxPartBytes {
			parts = append(parts, part)
			part = header()
			prevLabelSet = 0
		}
		part = binary.AppendUvarint(part, uint64(recs[i].labelSet-prevLabelSet))
		part = binary.AppendUvarint(part, uint64(j-i))
		part = binary.AppendUvarint(part, uint64(len(body)))
		part = append(part, body...)
		prevLabelSet = recs[i].labelSet
		i = j
	}
	return append(parts, part)
}

func randomRecords(r *rand.Rand, n int, types typeSet, period int64) []record {
	acc := make(sums)
	for range n {
		rec := record{labelSet: uint32(r.Intn(300)), stack: uint32(r.Intn(5000))}
		count := int64(r.Intn(20))
		for _, i := range types.indexes() {
			switch i {
			case schema.SamplesIndex:
				rec.setValue(i, count)
			case schema.CPUIndex:
				rec.setValue(i, count*period+int64(r.Intn(3)-1)*int64(r.Intn(2)))
			default:
				rec.setValue(i, r.Int63n(1<<40))
			}
		}
		acc.add(rec)
	}
	return acc.records()
}

func TestCPUBlocksAreWrittenAsBefore(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 100, 200000} { // the last splits into parts
		h := blockHeader{startNanos: t0.UnixNano(), durationNanos: 10e9, periodNanos: 10101010, types: cpuTypes}
		recs := randomRecords(r, n, cpuTypes, h.periodNanos)
		got, want := encodeBlock(h, recs), encodeBlockV1(h, recs)
		if len(got) != len(want) {
			t.Fatalf("%d records: %d parts, the old encoder %d", n, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("%d records: part %d differs from the old encoder's", n, i)
			}
		}
	}
}

func sameRecord(a, b record) bool {
	if a.labelSet != b.labelSet || a.stack != b.stack {
		return false
	}
	for i := range numValues {
		if a.value(i) != b.value(i) {
			return false
		}
	}
	return true
}

func TestBlockRoundTripsEveryTypeSet(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for types := typeSet(1); types < 1<<numValues; types++ {
		h := blockHeader{startNanos: t0.UnixNano(), durationNanos: 10e9, periodNanos: 10101010, types: types}
		recs := randomRecords(r, 3000, types, h.periodNanos)
		var got []record
		for _, part := range encodeBlock(h, recs) {
			gh, err := decodeBlock(part, func(uint32) bool { return true }, func(r record) { got = append(got, r) })
			if err != nil {
				t.Fatalf("types %04b: %v", types, err)
			}
			if gh != h {
				t.Errorf("types %04b: header %+v, want %+v", types, gh, h)
			}
		}
		if !slices.EqualFunc(got, recs, sameRecord) {
			t.Errorf("types %04b: records differ after a round trip", types)
		}
	}
	bad := blockHeader{types: 1 << numValues}.appendTo(nil)
	if _, err := decodeBlock(bad, nil, nil); err == nil {
		t.Error("a block of a sample type this build does not know: no error")
	}
}

// The seam for a second kind of sample: a profile carrying wall time
// beside CPU time goes into the store and comes back out of every query
// with both, raw and rolled up, and parses as pprof.
func TestWallTimeRoundTrip(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	g := smallGenerator()
	host := map[string]string{"host": "h"}
	var ps []*profile.Profile
	for i := range 14 { // across a minute boundary: raw blocks and a roll-up
		p := withWall(g.Interval(t0.Add(time.Duration(i)*10*time.Second), 10*time.Second), int64(i))
		if err := s.Append(ctx, p, host); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	want := canonicalValues(mergeTyped(t, ps), host)
	q := ProfileQuery{From: t0, To: t0.Add(time.Hour)}

	p, err := s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTypes(p, schema.Samples, schema.CPU, schema.Wall) {
		t.Fatalf("Query: sample types %v", p.SampleType)
	}
	if p.DefaultSampleType != "cpu" {
		t.Errorf("Query: default sample type %q, want cpu (pprof would take the last, wall)", p.DefaultSampleType)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if got := canonicalValues(p, nil); got != want {
		t.Errorf("Query differs from the merge of the intervals\n%s", firstDiff(got, want))
	}

	var buf bytes.Buffer
	if err := s.WriteProfile(ctx, q, &buf); err != nil {
		t.Fatal(err)
	}
	parsed, err := profile.Parse(&buf)
	if err != nil {
		t.Fatalf("WriteProfile does not parse: %v", err)
	}
	if got := canonicalValues(parsed, nil); got != want {
		t.Errorf("WriteProfile differs from the merge of the intervals\n%s", firstDiff(got, want))
	}
	if parsed.DefaultSampleType != "cpu" {
		t.Errorf("WriteProfile: default sample type %q, want cpu", parsed.DefaultSampleType)
	}

	sp, err := s.StackProfile(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTypes(sp, schema.Samples, schema.CPU, schema.Wall) {
		t.Fatalf("StackProfile: sample types %v", sp.SampleType)
	}
	if got, want := valueTotals(sp), valueTotals(p); !slices.Equal(got, want) {
		t.Errorf("StackProfile totals %v, Query's %v", got, want)
	}

	// Only the minute's roll-up, when raw blocks are not read.
	level1, err := s.Query(ctx, ProfileQuery{From: t0, To: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !sameTypes(level1, schema.Samples, schema.CPU, schema.Wall) || valueTotals(level1)[2] == 0 {
		t.Errorf("first minute: sample types %v, totals %v", level1.SampleType, valueTotals(level1))
	}
}

// A profile of a kind without CPU time (samples and wall time only) reads
// back with just its own types.
func TestProfileWithoutCPU(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	p := withWall(smallGenerator().Interval(t0, 10*time.Second), 3)
	p.SampleType = []*profile.ValueType{p.SampleType[0], p.SampleType[2]}
	for _, smp := range p.Sample {
		smp.Value = []int64{smp.Value[0], smp.Value[2]}
	}
	if err := s.Append(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(ctx, ProfileQuery{From: t0, To: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !sameTypes(got, schema.Samples, schema.Wall) {
		t.Fatalf("sample types %v, want samples/count, wall/nanoseconds", got.SampleType)
	}
	if c, w := canonicalValues(got, nil), canonicalValues(p, nil); c != w {
		t.Errorf("query differs from the profile written\n%s", firstDiff(c, w))
	}
}

// withWall adds a stub wall/nanoseconds value to a CPU profile: the CPU
// time plus some time off the CPU, different per sample.
func withWall(p *profile.Profile, seed int64) *profile.Profile {
	p.SampleType = append(p.SampleType, schema.Wall.ValueType())
	for i, smp := range p.Sample {
		smp.Value = append(smp.Value, smp.Value[1]+(seed*7919+int64(i)*104729)%1000003)
	}
	return p
}

func sameTypes(p *profile.Profile, want ...schema.SampleType) bool {
	return slices.EqualFunc(p.SampleType, want, func(vt *profile.ValueType, st schema.SampleType) bool { return schema.Of(vt) == st })
}

func valueTotals(p *profile.Profile) []int64 {
	out := make([]int64, len(p.SampleType))
	for _, smp := range p.Sample {
		for i, v := range smp.Value {
			out[i] += v
		}
	}
	return out
}

// mergeTyped merges profiles whose sample types differ, as the store does:
// each is widened to the union of types, in schema.Known order, missing
// values zero.
func mergeTyped(t *testing.T, ps []*profile.Profile) *profile.Profile {
	t.Helper()
	var union typeSet
	for _, p := range ps {
		for _, vt := range p.SampleType {
			union |= 1 << schema.Index(schema.Of(vt))
		}
	}
	idx := union.indexes()
	copies := make([]*profile.Profile, len(ps))
	for i, p := range ps {
		c := p.Copy()
		c.TimeNanos = ps[0].TimeNanos
		pos := make([]int, len(c.SampleType))
		for j, vt := range c.SampleType {
			pos[j] = slices.Index(idx, schema.Index(schema.Of(vt)))
		}
		for _, smp := range c.Sample {
			v := make([]int64, len(idx))
			for j, x := range smp.Value {
				v[pos[j]] = x
			}
			smp.Value = v
		}
		c.SampleType = schema.ValueTypes(union.sampleTypes()...)
		copies[i] = c
	}
	m, err := profile.Merge(copies)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// canonicalValues is canonical with every value, named by its type.
func canonicalValues(p *profile.Profile, host map[string]string) string {
	sums := make(map[string][]int64)
	for _, smp := range p.Sample {
		key := canonical(&profile.Profile{SampleType: schema.CPUSampleTypes(), Sample: []*profile.Sample{{
			Location: smp.Location, Label: smp.Label, NumLabel: smp.NumLabel, Value: []int64{0, 0},
		}}}, host)
		key, _, _ = strings.Cut(key, " -> ")
		v := sums[key]
		if v == nil {
			v = make([]int64, len(smp.Value))
		}
		for i, x := range smp.Value {
			v[i] += x
		}
		sums[key] = v
	}
	var types []string
	for _, vt := range p.SampleType {
		types = append(types, vt.Type+"/"+vt.Unit)
	}
	lines := []string{strings.Join(types, " ")}
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		lines = append(lines, fmt.Sprintf("%s -> %v", k, sums[k]))
	}
	return strings.Join(lines, "\n")
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

func gunzipFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// untar unpacks a gzipped tar of regular files and directories into dir.
func untar(t *testing.T, path, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(gunzipFile(t, path)))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.Clean(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o750); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Merging records of types beyond the CPU pair adds their values without
// changing the inputs, which share their arrays with the blocks read.
func TestMergeRecordsKeepsInputs(t *testing.T) {
	rec := func(stack uint32, wall int64) record {
		r := record{stack: stack}
		r.setValue(schema.SamplesIndex, 1)
		r.setValue(schema.WallIndex, wall)
		return r
	}
	a := []record{rec(1, 10), rec(2, 20)}
	b := []record{rec(2, 5), rec(3, 7)}
	m := mergeRecords(nil, a, b)
	m = mergeRecords(nil, m, b)
	want := []int64{10, 30, 14}
	for i, r := range m {
		if r.value(schema.WallIndex) != want[i] || r.count() != []int64{1, 3, 2}[i] {
			t.Errorf("merged stack %d: count %d wall %d, want wall %d", r.stack, r.count(), r.value(schema.WallIndex), want[i])
		}
	}
	if a[1].value(schema.WallIndex) != 20 || b[0].value(schema.WallIndex) != 5 {
		t.Errorf("inputs changed by the merge: %d, %d", a[1].value(schema.WallIndex), b[0].value(schema.WallIndex))
	}
}
