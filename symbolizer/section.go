package symbolizer

import (
	"debug/elf"
	"fmt"
	"io"
)

// Caps on sections read into memory. debug/elf inflates compressed
// sections without bounds, so the size a compressed section claims is
// checked before anything is inflated.
const (
	maxSectionBytes = 512 << 20
	// maxCompressionRatio rejects compressed sections that claim to inflate
	// far more than real debug info does (about 3-10x).
	maxCompressionRatio = 64
)

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
	data, err := io.ReadAll(io.LimitReader(s.Open(), int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("read section %s: %w", s.Name, err)
	}
	if uint64(len(data)) != size {
		return nil, fmt.Errorf("section %s inflates to %d bytes, its header claims %d", s.Name, len(data), size)
	}
	return data, nil
}
