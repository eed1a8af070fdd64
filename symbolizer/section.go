package symbolizer

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Caps on sections read into memory. debug/elf inflates compressed
// sections without bounds, so the size a compressed section claims is
// checked before anything is inflated.
const (
	maxSectionBytes = 512 << 20
	// maxCompressionRatio rejects compressed sections that claim to inflate
	// far more than real debug info does (about 3-10x).
	maxCompressionRatio = 64
	// maxMappedFileBytes is the largest file memory-mapped whole.
	maxMappedFileBytes = 4 << 30
)

// mappedFile is a read-only memory map of a whole file. Sections stored
// uncompressed (the Go line table, DWARF of C programs, symbol strings)
// are read as slices of it: their pages belong to the page cache, shared
// with the processes running the file and reclaimable, and only the pages
// lookups touch become resident. Read into the heap instead, one Go
// binary's line table costs the daemon as much as its whole size.
//
// The map is removed when the mappedFile becomes unreachable, so every
// value holding slices of it must also hold the mappedFile.
type mappedFile struct {
	data []byte
}

func mapFile(f *os.File) (*mappedFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	if st.Size() <= 0 || st.Size() > maxMappedFileBytes {
		return nil, fmt.Errorf("%s is %d bytes: not mapped", f.Name(), st.Size())
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	m := &mappedFile{data: data}
	runtime.AddCleanup(m, func(b []byte) { _ = unix.Munmap(b) }, data)
	return m, nil
}

// release drops the process's references to the pages it touched: they
// stay in the page cache, shared and reclaimable, and fault back in on the
// next lookup that needs them. Without it every page a parse or lookup
// ever touched would count in the daemon's RSS until the file is dropped.
func (m *mappedFile) release() {
	_ = unix.Madvise(m.data, unix.MADV_DONTNEED)
}

// elfImage is a parsed ELF file and, when it could be mapped, its bytes.
// A file truncated while mapped faults on access (SIGBUS): readers run
// with debug.SetPanicOnFault set (see Profile) and recover.
type elfImage struct {
	*elf.File
	mapped *mappedFile // nil: sections are read into the heap
}

// openELF parses r's ELF headers, memory-mapping r when it is a file.
func openELF(r io.ReaderAt) (elfImage, error) {
	if f, ok := r.(*os.File); ok {
		if m, err := mapFile(f); err == nil {
			ef, err := newELF(bytes.NewReader(m.data))
			return elfImage{File: ef, mapped: m}, err
		}
	}
	ef, err := newELF(r)
	return elfImage{File: ef}, err
}

// sectionData returns a section's bytes and how many of them are on the
// heap: a slice of the map for an uncompressed section of a mapped file,
// else the bytes read (and inflated) as sectionData does.
func (f elfImage) sectionData(s *elf.Section, max int64) ([]byte, int64, error) {
	if f.mapped != nil && s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_COMPRESSED == 0 {
		if s.Size > uint64(max) {
			return nil, 0, fmt.Errorf("section %s is %d bytes, over the %d byte limit", s.Name, s.Size, max)
		}
		end := s.Offset + s.Size
		if end < s.Offset || end > uint64(len(f.mapped.data)) {
			return nil, 0, fmt.Errorf("section %s at [%d, %d) is past the end of the file", s.Name, s.Offset, end)
		}
		return f.mapped.data[s.Offset:end:end], 0, nil
	}
	data, err := sectionData(s, max)
	return data, int64(len(data)), err
}

// sectionData reads a section, refusing sections over max bytes (after
// decompression) and compressed sections with implausible ratios.
// (GNU .zdebug sections are not read: no current toolchain writes them.)
func sectionData(s *elf.Section, max int64) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("section %s has no data in this file", s.Name)
	}
	// For SHF_COMPRESSED sections debug/elf has already read the size the
	// compression header claims into s.Size; nothing is inflated yet.
	size := s.Size
	if size > uint64(max) {
		return nil, fmt.Errorf("section %s is %d bytes, over the %d byte limit", s.Name, size, max)
	}
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		data := make([]byte, size)
		if _, err := s.ReadAt(data, 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("read section %s: %w", s.Name, err)
		}
		return data, nil
	}
	if s.FileSize == 0 || size/s.FileSize > maxCompressionRatio {
		return nil, fmt.Errorf("section %s claims to inflate %d bytes to %d", s.Name, s.FileSize, size)
	}
	// Exactly the claimed size, allocated once (io.ReadAll's doubling
	// held twice the section at its peak).
	data := make([]byte, size)
	r := s.Open()
	if n, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("section %s inflates to %d bytes, its header claims %d: %w", s.Name, n, size, err)
	}
	if n, _ := r.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("section %s inflates past the %d bytes its header claims", s.Name, size)
	}
	return data, nil
}
