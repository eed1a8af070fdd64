package symbolizer

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/ember-profiler/ember/collector"
)

// Options configure a Symbolizer. The zero value is usable.
type Options struct {
	// KallsymsPath is where kernel symbols are read; default /proc/kallsyms.
	KallsymsPath string
	// MaxCachedFiles bounds how many parsed files are kept (least recently
	// used are dropped); default 512.
	MaxCachedFiles int
}

const (
	defaultKallsymsPath   = "/proc/kallsyms"
	defaultMaxCachedFiles = 512
	// maxCachedAddresses bounds the (file, address) result cache. An entry
	// is a few dozen bytes, so this is a few MiB at most.
	maxCachedAddresses = 1 << 16
)

// A Symbolizer names the addresses of collector batches. It keeps parsed
// files and resolved addresses between batches. Its methods may be called
// from several goroutines; calls are serialized.
type Symbolizer struct {
	mu     sync.Mutex
	kernel *kallsyms
	files  *lru[fileKey, *fileEntry]
	addrs  *lru[addrKey, []frame]
	log    *slog.Logger
}

// fileKey identifies a file's contents well enough to reuse its parse: the
// same inode with the same size and modification time. (The build ID could
// become the key once every file is known to have one.)
type fileKey struct {
	dev, inode uint64
	size       int64
	mtimeNanos int64
}

// fileEntry is a cached parse: the file or the reason it could not be read.
type fileEntry struct {
	elf *elfFile
	err error
}

// addrKey is one lookup: a file and the file offset of the looked-up
// address (already moved into the call for return addresses).
type addrKey struct {
	file    fileKey
	fileOff uint64
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
	k, err := readKallsyms(opts.KallsymsPath)
	if err != nil {
		return nil, err
	}
	return &Symbolizer{
		kernel: k,
		files:  newLRU[fileKey, *fileEntry](opts.MaxCachedFiles),
		addrs:  newLRU[addrKey, []frame](maxCachedAddresses),
		log:    slog.Default(),
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
	}, nil
}

// file returns the parsed ELF file behind a mapping, from the cache when
// the same file was parsed before. A file that fails to parse is cached as
// failed and logged once.
func (s *Symbolizer) file(key fileKey, m *collector.Mapping) (*elfFile, error) {
	if e, ok := s.files.get(key); ok {
		return e.elf, e.err
	}
	ef, err := parseELF(m.File)
	if err != nil {
		err = fmt.Errorf("symbols of %s: %w", m.Path, err)
		s.log.Warn("cannot read symbols; its frames stay unnamed",
			slog.String("path", m.Path), slog.Any("err", err))
	}
	s.files.add(key, &fileEntry{elf: ef, err: err})
	return ef, err
}

// userFrames names the address addr of mapping m. lookup is the address
// to look up: addr itself for a leaf, addr-1 for a return address, so the
// lookup lands inside the call instruction rather than on whatever
// follows it (the next function, after a call that does not return).
func (s *Symbolizer) userFrames(key fileKey, keyErr error, m *collector.Mapping, addr, lookup uint64) (frames []frame, buildID string) {
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
	ef, err := s.file(key, m)
	if err != nil {
		return fallback(), ""
	}
	if lookup < m.Start {
		lookup = addr
	}
	ak := addrKey{file: key, fileOff: lookup - m.Start + m.Offset}
	frames, ok := s.addrs.get(ak)
	if !ok {
		if vaddr, ok := ef.elfAddr(ak.fileOff); ok {
			frames, _ = ef.resolve(vaddr)
		}
		// nil is cached too: the file does not know this address. The
		// fallback name is not cached, since it depends on the mapping's
		// path and the unadjusted address.
		s.addrs.add(ak, frames)
	}
	if frames == nil {
		return fallback(), ef.buildID
	}
	return frames, ef.buildID
}

// kernelFrames names a kernel address (lookup as for userFrames).
func (s *Symbolizer) kernelFrames(lookup uint64) []frame {
	sym, ok := s.kernel.lookup(lookup)
	if !ok {
		return []frame{{Function: markerUnknownKernel, SystemName: markerUnknownKernel}}
	}
	return []frame{sym.asFrame()}
}
