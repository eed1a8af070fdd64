package collector

import (
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"github.com/ember-profiler/ember/bpf"
)

// fakeUnwindMaps keeps what the unwinder writes in memory, so that its
// table logic is tested without root. It refuses what the kernel would: a
// block of a chunk not added, and more ranges than maxRanges when set.
type fakeUnwindMaps struct {
	mu        sync.Mutex
	rules     map[uint32]bpf.SamplerUnwindRule
	ranges    map[bpf.SamplerRangeKey]bpf.SamplerUnwindRange
	procs     map[uint32]bpf.SamplerUnwindProc
	files     map[bpf.SamplerFileKey]bpf.SamplerFileUnwind
	images    map[uint32]bpf.SamplerImageRecord
	gen       uint32
	chunks    map[uint32]*[chunkBlocks][blockWords]uint32
	maxRanges int // 0: no bound
	// blockWrites counts blocks written, chunksAdded chunks created.
	blockWrites, chunksAdded int
	rangePuts                int // keys put, all calls
}

var _ unwindMaps = (*fakeUnwindMaps)(nil)

func newFakeUnwindMaps() *fakeUnwindMaps {
	return &fakeUnwindMaps{
		rules:  make(map[uint32]bpf.SamplerUnwindRule),
		ranges: make(map[bpf.SamplerRangeKey]bpf.SamplerUnwindRange),
		procs:  make(map[uint32]bpf.SamplerUnwindProc),
		files:  make(map[bpf.SamplerFileKey]bpf.SamplerFileUnwind),
		images: make(map[uint32]bpf.SamplerImageRecord),
		chunks: make(map[uint32]*[chunkBlocks][blockWords]uint32),
	}
}

func (f *fakeUnwindMaps) putRule(id uint32, r *bpf.SamplerUnwindRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id >= uint32(maxRules) {
		return fmt.Errorf("rule %d out of range", id)
	}
	f.rules[id] = *r
	return nil
}

func (f *fakeUnwindMaps) putRanges(keys []bpf.SamplerRangeKey, ranges []bpf.SamplerUnwindRange) []bpf.SamplerRangeKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rangePuts += len(keys)
	var stored []bpf.SamplerRangeKey
	for i, k := range keys {
		if _, ok := f.ranges[k]; !ok && f.maxRanges > 0 && len(f.ranges) >= f.maxRanges {
			continue // full
		}
		f.ranges[k] = ranges[i]
		stored = append(stored, k)
	}
	return stored
}

func (f *fakeUnwindMaps) deleteRanges(keys []bpf.SamplerRangeKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.ranges, k)
	}
}

func (f *fakeUnwindMaps) putProc(pid uint32, p *bpf.SamplerUnwindProc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[pid] = *p
	return nil
}

func (f *fakeUnwindMaps) deleteProc(pid uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.procs, pid)
}

func (f *fakeUnwindMaps) setRangesGeneration(gen uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen = gen
	return nil
}

func (f *fakeUnwindMaps) addChunk(c uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.chunks[c] != nil {
		return fmt.Errorf("chunk %d added twice", c)
	}
	f.chunks[c] = new([chunkBlocks][blockWords]uint32)
	f.chunksAdded++
	return nil
}

func (f *fakeUnwindMaps) dropChunk(c uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.chunks, c)
}

func (f *fakeUnwindMaps) readBlock(c, b uint32, block *[blockWords]uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.chunks[c]
	if ch == nil || b >= chunkBlocks {
		return fmt.Errorf("no block %d of chunk %d", b, c)
	}
	*block = ch[b]
	return nil
}

func (f *fakeUnwindMaps) writeBlock(c, b uint32, block *[blockWords]uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.chunks[c]
	if ch == nil || b >= chunkBlocks {
		return fmt.Errorf("no block %d of chunk %d", b, c)
	}
	ch[b] = *block
	f.blockWrites++
	return nil
}

func (f *fakeUnwindMaps) close() {}

func (f *fakeUnwindMaps) putFileUnwind(key bpf.SamplerFileKey, fu *bpf.SamplerFileUnwind) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[key] = *fu
	return nil
}

func (f *fakeUnwindMaps) deleteFileUnwind(key bpf.SamplerFileKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, key)
}

func (f *fakeUnwindMaps) image(pid uint32) (*bpf.SamplerImageRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.images[pid]
	return &rec, ok
}

func (f *fakeUnwindMaps) deleteImage(pid uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.images, pid)
}

func (f *fakeUnwindMaps) imagePIDs() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	pids := make([]uint32, 0, len(f.images))
	for pid := range f.images {
		pids = append(pids, pid)
	}
	return pids
}

// words reads n words of the table space from word start on, as the BPF
// walk would: a word of a missing chunk reads as 0.
func (f *fakeUnwindMaps) words(start, n uint32) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]uint32, n)
	for i := range out {
		w := start + uint32(i)
		if ch := f.chunks[w>>chunkShift]; ch != nil {
			out[i] = ch[w>>blockShift&(chunkBlocks-1)][w&(blockWords-1)]
		}
	}
	return out
}

// rangesOf returns the ranges of pid, by key.
func (f *fakeUnwindMaps) rangesOf(pid uint32) map[bpf.SamplerRangeKey]bpf.SamplerUnwindRange {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[bpf.SamplerRangeKey]bpf.SamplerUnwindRange)
	for k, r := range f.ranges {
		if bits.ReverseBytes32(k.PidBe) == pid { // stored big-endian
			out[k] = r
		}
	}
	return out
}

func (f *fakeUnwindMaps) chunkIndexes() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint32
	for c := range f.chunks {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
