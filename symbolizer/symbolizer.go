package symbolizer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

// Options configure a Symbolizer. The zero value is usable.
type Options struct {
	// KallsymsPath is where kernel symbols are read; default /proc/kallsyms.
	KallsymsPath string
	// MaxCachedFiles bounds how many files' parses are remembered (least
	// recently used are dropped); default 512.
	MaxCachedFiles int
	// MaxCacheBytes is the memory budget of the caches, approximate:
	// parsed files (symbol tables, DWARF sections and indexes, Go line
	// tables), JIT perf maps and named addresses together; the least
	// recently used are dropped past it. Perf maps and named addresses
	// take at most an eighth of it each, parsed files the rest, and DWARF
	// larger than three quarters of it is not read (the symbol tables
	// name those frames). Default 256 MiB.
	MaxCacheBytes int64
	// DebugDirs are searched for separate debug files before
	// /usr/lib/debug, laid out the same way: .build-id/xx/rest.debug,
	// the object's path, or its .gnu_debuglink name under its directory.
	// They are host paths.
	DebugDirs []string
}

const (
	defaultKallsymsPath   = "/proc/kallsyms"
	defaultMaxCachedFiles = 512
	defaultMaxCacheBytes  = 256 << 20
	// maxCachedAddresses bounds the (file, address) result cache. An entry
	// is a few dozen bytes plus the frames, so this is a few MiB at most.
	maxCachedAddresses = 1 << 16
	// kallsymsMaxAge is how often at most kallsyms is reread when a kernel
	// address is unknown or in a BPF program, which come and go.
	kallsymsMaxAge = 10 * time.Second
	// addrEntryBytes and frameBytes are what an address cache entry and
	// each of its frames cost besides the frames' strings: its map slot,
	// list element and entry (243 bytes measured in a heap profile of
	// TestCacheKeepsBudgetOnHostFiles), and the frames' backing array.
	addrEntryBytes = 256
	frameBytes     = 64
)

// A Symbolizer names the addresses of collector batches. It keeps parsed
// files and resolved addresses between batches. Its methods may be called
// from several goroutines; calls are serialized.
type Symbolizer struct {
	mu sync.Mutex
	// kernel is reread when stale (see kallsymsMaxAge).
	kernel     *kallsyms
	kernelRead time.Time
	// bpfPrograms fingerprints the kernel's loaded BPF programs (ok false
	// when it cannot tell); bpfSeen is its value when kallsyms was read.
	bpfPrograms    func() (fingerprint uint64, ok bool)
	bpfSeen        uint64
	kallsymsPath   string
	kallsymsMaxAge time.Duration
	// files maps a file (by stat) to the key of its parsed tables, or the
	// reason it could not be read; tables holds the parses, keyed by build
	// ID where there is one so that every copy of a library shares one.
	files  *lru[fileKey, *fileEntry]
	tables *lru[tableKey, *elfFile]
	// touched are the mapped files read since the last release.
	touched map[*mappedFile]struct{}
	addrs   *lru[addrKey, addrResult]
	// tableGens and nextTableID number parses for the address cache.
	tableGens   *lru[tableKey, tableGen]
	nextTableID uint64
	perfMaps    *lru[uint32, *perfMap]
	// jitRoots holds the roots of processes with JIT code (see jitroots.go).
	jitRoots     map[uint32]*jitRoot
	oneShotRoots []*os.File
	// held are samples waiting for a perf map written at exit (held.go).
	held      map[uint32]*heldProc
	heldCount int
	// maxCacheBytes is the budget tables, addrs and perfMaps share.
	maxCacheBytes int64
	debugDirs     []string
	maxDWARFBytes int64
	// procRoot is /proc; tests point it at a fake tree.
	procRoot string
	stats    CacheStats
	// published is a copy of the stats as of the last batch, readable while
	// a batch is being named (which can take seconds on a busy host).
	published atomic.Pointer[CacheStats]
	log       *slog.Logger
}

// CacheStats describe the symbolizer's caches, for metrics.
type CacheStats struct {
	// Hits and Misses count address lookups answered from the
	// (file, address) cache or resolved from the tables.
	Hits, Misses uint64
	// FileHits and FileMisses count files whose parsed tables were found
	// in the cache (for instance, the same libc in another process) or
	// had to be parsed.
	FileHits, FileMisses uint64
	// Evictions counts tables dropped to stay within the budget.
	Evictions uint64
	// Bytes is the approximate memory held by the caches; Files is the
	// number of parsed files held.
	Bytes int64
	Files int
}

// Stats returns the cache counters as of the last batch named. It never
// waits for the batch being named, so metrics answer at once.
func (s *Symbolizer) Stats() CacheStats {
	if st := s.published.Load(); st != nil {
		return *st
	}
	return CacheStats{}
}

// publishStats copies the counters for Stats; s.mu is held.
func (s *Symbolizer) publishStats() {
	st := s.stats
	st.Evictions = s.tables.evicted
	st.Bytes = s.tables.bytes + s.addrs.bytes + s.perfMaps.bytes
	st.Files = s.tables.len()
	s.published.Store(&st)
}

// fileKey identifies a file's contents well enough to reuse its parse: the
// same inode with the same size and change and modification times.
type fileKey struct {
	dev, inode uint64
	size       int64
	mtimeNanos int64
	ctimeNanos int64
}

// tableKey identifies a parse: by build ID when the file has one (shared
// by every copy of the file, in any container), else by its fileKey.
type tableKey struct {
	buildID string
	file    fileKey
}

// fileEntry is a file seen before: which tables it has, or the reason it
// could not be read.
type fileEntry struct {
	table tableKey
	err   error
}

// addrKey is one lookup: a parse generation (see tableGen) and the file
// offset looked up (already moved into the call for return addresses).
type addrKey struct {
	table   uint64
	fileOff uint64
}

// tableGen numbers the parses of one table key for the result cache. A
// parse again after an eviction gives the same answers and keeps the
// number; a richer copy (symbols or DWARF the last parse lacked) gets a
// new one, so answers cached from the poorer parse are not reused.
type tableGen struct {
	id                  uint64
	anyDWARF, hasSymtab bool
}

// addrResult is what a lookup found: the frames (nil when the file does
// not know the address) and the file's build ID.
type addrResult struct {
	frames  []frame
	buildID string
}

// New reads the kernel's symbols and returns a Symbolizer. It fails when
// the kernel hides its addresses from this process.
func New(opts Options) (*Symbolizer, error) {
	if opts.KallsymsPath == "" {
		opts.KallsymsPath = defaultKallsymsPath
	}
	if opts.MaxCachedFiles <= 0 {
		opts.MaxCachedFiles = defaultMaxCachedFiles
	}
	if opts.MaxCacheBytes <= 0 {
		opts.MaxCacheBytes = defaultMaxCacheBytes
	}
	k, err := readKallsyms(opts.KallsymsPath)
	if err != nil {
		return nil, err
	}
	return &Symbolizer{
		kernel:         k,
		kernelRead:     time.Now(),
		bpfPrograms:    loadedBPFPrograms,
		bpfSeen:        fingerprintOrZero(loadedBPFPrograms),
		kallsymsPath:   opts.KallsymsPath,
		kallsymsMaxAge: kallsymsMaxAge,
		files:          newLRU[fileKey, *fileEntry](opts.MaxCachedFiles),
		tables:         newSizedLRU[tableKey, *elfFile](opts.MaxCachedFiles, opts.MaxCacheBytes),
		addrs:          newSizedLRU[addrKey, addrResult](maxCachedAddresses, max(opts.MaxCacheBytes/8, 1)),
		tableGens:      newLRU[tableKey, tableGen](2 * opts.MaxCachedFiles),
		perfMaps:       newSizedLRU[uint32, *perfMap](opts.MaxCachedFiles, max(opts.MaxCacheBytes/8, 1)),
		maxCacheBytes:  opts.MaxCacheBytes,
		debugDirs:      append(slices.Clone(opts.DebugDirs), defaultDebugDir),
		maxDWARFBytes:  min(opts.MaxCacheBytes-opts.MaxCacheBytes/4, defaultMaxDWARFBytes),
		procRoot:       "/proc",
		touched:        make(map[*mappedFile]struct{}),
		log:            slog.Default(),
	}, nil
}

// statKey returns the cache key of an open file.
func statKey(f *os.File) (fileKey, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileKey{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, fmt.Errorf("stat %s: no device and inode", f.Name())
	}
	return fileKey{
		dev:        uint64(st.Dev),
		inode:      st.Ino,
		size:       st.Size,
		mtimeNanos: st.Mtim.Nano(),
		ctimeNanos: st.Ctim.Nano(),
	}, nil
}

// file returns the parsed tables of the file behind a mapping: from the
// cache when this file, or another with the same build ID, was parsed
// before. A file that fails to parse is remembered as failed and logged
// once.
func (s *Symbolizer) file(key fileKey, m *model.Mapping, proc *model.Process) (*elfFile, tableKey, error) {
	if e, ok := s.files.get(key); ok {
		if e.err != nil {
			return nil, tableKey{}, e.err
		}
		if ef, ok := s.tables.get(e.table); ok {
			s.stats.FileHits++
			return ef, e.table, nil
		}
		// Evicted for the budget: parse again.
	}
	tk, ef, err := s.parseFile(key, m, proc)
	if err != nil {
		err = fmt.Errorf("symbols of %s: %w", m.Path, err)
		s.log.Warn("cannot read symbols; its frames stay unnamed",
			slog.String("path", m.Path), slog.Any("err", err))
		s.files.add(key, &fileEntry{err: err})
		return nil, tableKey{}, err
	}
	s.files.add(key, &fileEntry{table: tk})
	return ef, tk, nil
}

// parseFile reads the build ID of a mapping's file and parses its tables
// unless a file with that build ID is already cached. proc is the process
// the mapping belongs to (nil when unknown), whose root directory is
// searched for a debug file beside the object.
func (s *Symbolizer) parseFile(key fileKey, m *model.Mapping, proc *model.Process) (tableKey, *elfFile, error) {
	f, err := newELF(m.File)
	if err != nil {
		return tableKey{}, nil, fmt.Errorf("parse ELF: %w", err)
	}
	tk := tableKey{file: key}
	if id := readBuildID(f); id != "" {
		tk = tableKey{buildID: id}
		if ef, ok := s.tables.get(tk); ok && !richerThan(f, ef) {
			s.stats.FileHits++
			return tk, ef, nil
		}
	}
	s.stats.FileMisses++
	start := time.Now()
	ef, skipped, err := parseELFWith(m.File, s.maxDWARFBytes)
	if err != nil {
		return tableKey{}, nil, err
	}
	if !ef.hasDWARF {
		skipped = append(skipped, s.addDebugFile(ef, m, proc)...)
	}
	for _, err := range skipped {
		s.log.Info("a symbol source of a file is unusable; using the next",
			slog.String("path", m.Path), slog.Any("err", err))
	}
	g, ok := s.tableGens.get(tk)
	if !ok || g.anyDWARF != ef.anyDWARF || g.hasSymtab != ef.hasSymtab {
		s.nextTableID++
		g = tableGen{id: s.nextTableID, anyDWARF: ef.anyDWARF, hasSymtab: ef.hasSymtab}
		s.tableGens.add(tk, g)
	}
	ef.id = g.id
	s.tables.addSized(tk, ef, ef.sizeBytes())
	s.log.Debug("parsed symbols", slog.String("path", m.Path), slog.String("build_id", ef.buildID),
		slog.Int("sources", len(ef.resolvers)), slog.Duration("took", time.Since(start)))
	return tk, ef, nil
}

// addDebugFile looks for the separate debug file of ef and puts its DWARF
// and symbols in front of ef's own symbol tables.
func (s *Symbolizer) addDebugFile(ef *elfFile, m *model.Mapping, proc *model.Process) []error {
	obj := debugObject{buildID: ef.buildID, link: ef.link, hasLink: ef.hasLink, path: m.Path}
	var self unix.Stat_t
	if err := unix.Fstat(int(m.File.Fd()), &self); err == nil {
		obj.self = &self
	}
	var processRoot *os.File
	if ef.hasLink && obj.self != nil {
		// Only a debuglink is looked for beside the object; without the
		// object's stat, nothing found there could be checked.
		if r, err := openProcessRoot(s.procRoot, proc); err == nil {
			processRoot = r
			defer r.Close()
		}
	}
	f, df, path := openDebugFile(s.debugDirs, processRoot, obj)
	if f == nil {
		return nil
	}
	defer f.Close()
	var errs []error
	var front []resolver
	if df.mapped != nil {
		ef.mapped = append(ef.mapped, df.mapped)
	}
	d, err := newDWARFResolver(df, s.maxDWARFBytes)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("debug file %s: %w", path, err))
	case d != nil:
		front = append(front, d)
		ef.anyDWARF = true
	}
	// Keep the file's own Go resolver ahead of the debug file's symbols.
	var rest []resolver
	for _, r := range ef.resolvers {
		if _, ok := r.(*goResolver); ok {
			front = append(front, r)
		} else {
			rest = append(rest, r)
		}
	}
	names := &symbolNames{}
	syms, _, err := readFunctionSymbols(df, names)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("debug file %s: %w", path, err))
	case len(syms) > 0:
		front = append(front, newSymtabResolver(syms, names))
		ef.hasSymtab = ef.hasSymtab || hasFullSymtab(df.File, syms)
	}
	ef.resolvers = append(front, rest...)
	return errs
}

// userFrames names the address addr of mapping m of process proc (nil when
// unknown). lookup is the address to look up: addr itself for a leaf,
// addr-1 for a return address, so the lookup lands inside the call
// instruction rather than on whatever follows it (the next function, after
// a call that does not return).
func (s *Symbolizer) userFrames(key fileKey, keyErr error, proc *model.Process, m *model.Mapping, addr, lookup uint64) (frames []frame, buildID string) {
	fallback := func() []frame {
		name := unknownIn(m, addr)
		switch m.Path {
		case "[vdso]":
			name = markerVDSO
		case "[vsyscall]":
			name = markerVsyscall
		}
		return []frame{{Function: name, SystemName: name}}
	}
	if m.File == nil || keyErr != nil {
		return fallback(), ""
	}
	if lookup < m.Start {
		lookup = addr
	}
	// A hot address is answered from the result cache before its file's
	// tables are looked for: with a budget smaller than the host's debug
	// info, an evicted file is then parsed again for a new address, not
	// for every batch that samples it.
	fileOff := lookup - m.Start + m.Offset
	if e, ok := s.files.get(key); ok && e.err == nil {
		if g, ok := s.tableGens.get(e.table); ok {
			if r, ok := s.addrs.get(addrKey{table: g.id, fileOff: fileOff}); ok {
				s.stats.Hits++
				if r.frames == nil {
					return fallback(), r.buildID
				}
				return r.frames, r.buildID
			}
		}
	}
	ef, tk, err := s.file(key, m, proc)
	if err != nil {
		return fallback(), ""
	}
	for _, mf := range ef.mapped {
		s.touched[mf] = struct{}{}
	}
	vaddr, ok := ef.elfAddr(fileOff)
	if !ok {
		return fallback(), ef.buildID
	}
	ak := addrKey{table: ef.id, fileOff: fileOff}
	if r, ok := s.addrs.get(ak); ok { // another copy of the file asked before
		s.stats.Hits++
		if r.frames == nil {
			return fallback(), r.buildID
		}
		return r.frames, r.buildID
	}
	s.stats.Misses++
	before := ef.sizeBytes()
	frames, _ = ef.resolve(vaddr)
	if after := ef.sizeBytes(); after != before {
		s.tables.resize(tk, after) // DWARF units read on demand
	}
	// nil is cached too: the file does not know this address. The
	// fallback name is not cached, since it depends on the mapping's
	// path and the unadjusted address.
	s.addrs.addSized(ak, addrResult{frames: frames, buildID: ef.buildID}, addrResultBytes(frames))
	s.fitTables()
	if frames == nil {
		return fallback(), ef.buildID
	}
	return frames, ef.buildID
}

// addrResultBytes is what caching frames costs. Their strings are
// counted although the tables may share them: they outlive a table's
// eviction.
func addrResultBytes(frames []frame) int64 {
	n := int64(addrEntryBytes)
	for _, f := range frames {
		n += frameBytes + int64(len(f.Function)+len(f.File))
		if unsafe.StringData(f.SystemName) != unsafe.StringData(f.Function) {
			n += int64(len(f.SystemName))
		}
	}
	return n
}

// fitTables gives the parsed files what the budget leaves after the
// address cache and perf maps, evicting down to it.
func (s *Symbolizer) fitTables() {
	s.tables.setMaxBytes(s.maxCacheBytes - s.addrs.bytes - s.perfMaps.bytes)
}

// jitFrames names an address of anonymous executable memory m from the
// process's perf map, or says why it cannot.
func (s *Symbolizer) jitFrames(proc *model.Process, m *model.Mapping, addr uint64, checked map[uint32]perfMapLook) []frame {
	look := perfMapLook{why: jitExited}
	if proc != nil && proc.SnapshotErr == nil {
		look = s.perfMapFor(proc, checked)
	}
	return jitFramesFrom(look, m, addr)
}

// jitFramesFrom names a JIT address from a perf map, or says why not.
func jitFramesFrom(look perfMapLook, m *model.Mapping, addr uint64) []frame {
	why := look.why
	if look.m != nil {
		if name, ok := look.m.lookup(addr); ok {
			return []frame{{Function: name, SystemName: name}}
		}
		why = jitNotInMap
	}
	name := unnamedJIT(m, why)
	return []frame{{Function: name, SystemName: name}}
}

// isJITMapping reports whether a mapping may hold JIT code that a perf
// map names: anonymous memory, named anonymous memory and memfd files.
func isJITMapping(m *model.Mapping) bool {
	switch {
	case m.Path == "":
		return true
	case len(m.Path) > 6 && m.Path[:6] == "[anon:":
		return true
	case len(m.Path) > 7 && m.Path[:7] == "/memfd:":
		return true
	}
	return false
}

// kernelFrames names a kernel address (lookup as for userFrames). An
// unknown address, or one in a BPF program (which are loaded and unloaded
// all the time), rereads kallsyms when it is older than kallsymsMaxAge;
// for an address in a BPF program, only if the set of loaded programs has
// changed since (a host that starts many processes runs Ember's exit hook
// all the time, and rereading kallsyms costs tens of milliseconds).
func (s *Symbolizer) kernelFrames(lookup uint64) []frame {
	sym, ok := s.kernel.lookup(lookup)
	if (!ok || sym.module == "bpf") && time.Since(s.kernelRead) > s.kallsymsMaxAge {
		s.kernelRead = time.Now()
		programs, known := s.bpfPrograms()
		if !ok || !known || programs != s.bpfSeen {
			if k, err := readKallsyms(s.kallsymsPath); err == nil {
				s.kernel = k
				s.bpfSeen = programs
				sym, ok = k.lookup(lookup)
			} else if !errors.Is(err, errKernelAddressesHidden) {
				s.log.Warn("cannot reread kernel symbols", slog.Any("err", err))
			}
		}
	}
	if !ok {
		return []frame{{Function: markerUnknownKernel, SystemName: markerUnknownKernel}}
	}
	return []frame{sym.asFrame()}
}
