package unwind

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// maxSectionBytes caps the CFI read from one file: libLLVM's .eh_frame is
// about 9 MB; debug/elf is not hardened, so a claimed size is never trusted.
const maxSectionBytes = 256 << 20

// ErrNotELF: the file is not a 64-bit x86-64 ELF object.
var ErrNotELF = errors.New("not an x86-64 ELF file")

// FileID returns the key a file's table is shared under: its GNU build ID
// when it has one, otherwise a hash of its CFI and load layout.
func FileID(f *elf.File) (string, error) {
	if id := buildID(f); id != "" {
		return "b" + id, nil
	}
	h := sha256.New()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			binary.Write(h, binary.LittleEndian, [3]uint64{p.Vaddr, p.Off, p.Filesz})
		}
	}
	for _, name := range []string{".eh_frame", ".debug_frame", ".text"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		binary.Write(h, binary.LittleEndian, [2]uint64{s.Addr, s.Size})
		if name == ".text" || s.Size > maxSectionBytes {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		h.Write(data)
	}
	return "h" + hex.EncodeToString(h.Sum(nil)[:20]), nil
}

// buildID reads the GNU build ID note.
func buildID(f *elf.File) string {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE || s.Size > 1<<16 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for len(data) >= 12 {
			nameSz := f.ByteOrder.Uint32(data[0:4])
			descSz := f.ByteOrder.Uint32(data[4:8])
			typ := f.ByteOrder.Uint32(data[8:12])
			nameEnd := 12 + align4(uint64(nameSz))
			descEnd := nameEnd + align4(uint64(descSz))
			if descEnd > uint64(len(data)) {
				break
			}
			if typ == 3 && nameSz == 4 && bytes.Equal(data[12:15], []byte("GNU")) && descSz > 0 {
				return hex.EncodeToString(data[nameEnd : nameEnd+uint64(descSz)])
			}
			data = data[descEnd:]
		}
	}
	return ""
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// Build reads a file's CFI into a table. A file without CFI, or a Go
// binary, gets a frame-pointer table with no rows.
func Build(r io.ReaderAt) (t *Table, err error) {
	// delve's parser and debug/elf are not hardened: a hostile file must
	// fail this table, never the daemon.
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("parse call-frame information: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotELF, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, ErrNotELF
	}
	return buildFromELF(f)
}

func buildFromELF(f *elf.File) (*Table, error) {
	// Go: rows from the line table's SP deltas; frame pointers where it
	// cannot be read (Go before 1.18).
	if f.Section(".gopclntab") != nil || f.Section(".go.buildinfo") != nil {
		t, err := goTable(f)
		if err != nil {
			return &Table{FramePointers: true, Source: "go: " + err.Error()}, nil
		}
		return t, nil
	}
	// Code built with -fno-asynchronous-unwind-tables has its CFI in
	// .debug_frame, while the C runtime's start files still bring a few
	// .eh_frame entries: take both, .eh_frame winning where they overlap.
	eh, ehErr := sectionFDEs(f, ".eh_frame")
	debug, debugErr := sectionFDEs(f, ".debug_frame")
	if ehErr != nil && debugErr != nil {
		return nil, ehErr
	}
	var sources []string
	if len(eh) > 0 {
		sources = append(sources, ".eh_frame")
	}
	fdes := sortFDEs(eh)
	added := 0
	for _, d := range debug {
		if !overlaps(fdes[:len(eh)], d) {
			fdes = append(fdes, d)
			added++
		}
	}
	if added > 0 {
		sources = append(sources, ".debug_frame")
	}
	t, err := tableFromFDEs(sortFDEs(fdes))
	if err != nil {
		return nil, err
	}
	if len(t.Rows) == 0 {
		return &Table{FramePointers: true, Source: "no call-frame information"}, nil
	}
	t.Source = strings.Join(sources, "+")
	return t, nil
}

// sectionFDEs parses one CFI section; a missing section has none.
func sectionFDEs(f *elf.File, name string) (frame.FrameDescriptionEntries, error) {
	s := f.Section(name)
	if s == nil || s.Type == elf.SHT_NOBITS || s.Size == 0 {
		return nil, nil
	}
	if s.Size > maxSectionBytes || s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, fmt.Errorf("%s: %d bytes or compressed, not read", name, s.Size)
	}
	data := make([]byte, s.Size)
	if _, err := s.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var ehFrameAddr uint64
	if name == ".eh_frame" {
		// delve tells the two formats apart by a non-zero address.
		ehFrameAddr = max(s.Addr, 1)
	}
	fdes, err := parseFDEs(data, ehFrameAddr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return fdes, nil
}

// overlaps reports whether d overlaps an FDE of the sorted list.
func overlaps(sorted frame.FrameDescriptionEntries, d *frame.FrameDescriptionEntry) bool {
	i := sort.Search(len(sorted), func(i int) bool { return sorted[i].End() > d.Begin() })
	return i < len(sorted) && sorted[i].Begin() < d.End()
}

func sortFDEs(fdes frame.FrameDescriptionEntries) frame.FrameDescriptionEntries {
	slices.SortStableFunc(fdes, func(a, b *frame.FrameDescriptionEntry) int {
		switch {
		case a.Begin() < b.Begin():
			return -1
		case a.Begin() > b.Begin():
			return 1
		}
		return 0
	})
	return fdes
}

// parseFDEs parses a CFI section with delve, which is not hardened: a panic
// is an error for this file.
func parseFDEs(data []byte, ehFrameAddr uint64) (fdes frame.FrameDescriptionEntries, err error) {
	defer func() {
		if p := recover(); p != nil {
			fdes, err = nil, fmt.Errorf("malformed call-frame information: %v", p)
		}
	}()
	fdes, err = frame.Parse(data, binary.LittleEndian, 0, 8, ehFrameAddr)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return fdes, nil
}

// tableFromCFI parses a CFI section and executes every FDE into rows.
func tableFromCFI(data []byte, ehFrameAddr uint64) (*Table, error) {
	fdes, err := parseFDEs(data, ehFrameAddr)
	if err != nil {
		return nil, err
	}
	return tableFromFDEs(sortFDEs(fdes))
}

// tableFromFDEs executes sorted FDEs into rows. FDEs may overlap (a later
// one wins from its start).
func tableFromFDEs(fdes frame.FrameDescriptionEntries) (t *Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("malformed call-frame information: %v", p)
		}
	}()
	t = &Table{}
	first := true
	for _, fde := range fdes {
		if fde.End() <= fde.Begin() || fde.CIE == nil {
			continue
		}
		if first {
			t.Base, first = fde.Begin(), false
		}
	}
	if first {
		return t, nil
	}
	// About one row per 4 bytes of CFA program, two more per FDE: sized
	// once, not grown by doubling through a million rows.
	n := 0
	for _, fde := range fdes {
		n += len(fde.Instructions)/4 + 2
	}
	b := rowBuilder{rows: make([]Row, 0, n), base: t.Base}
	for _, fde := range fdes {
		if fde.End() <= fde.Begin() || fde.CIE == nil {
			continue
		}
		b.add(fde)
	}
	t.Rows = normalize(b.rows, t.Base)
	return t, nil
}

// normalize sorts rows by PC, keeps the last row given for a PC except that
// a gap never hides the start of the next FDE, drops the gaps that are only
// alignment padding, and drops rows that repeat the one before.
func normalize(rows []Row, base uint64) []Row {
	slices.SortStableFunc(rows, func(a, b Row) int {
		switch {
		case a.PC < b.PC:
			return -1
		case a.PC > b.PC:
			return 1
		}
		return 0
	})
	out := rows[:0]
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].PC == r.PC {
			if r.CFA() != CFAGap {
				out[n-1] = r
			}
			continue
		}
		if n := len(out); n > 0 && sameRule(out[n-1], r) {
			continue
		}
		if n := len(out); n > 0 && isPadding(out[n-1], r, base) {
			// The function before holds over the padding, and the next
			// one may then repeat its rule.
			out = out[:n-1]
			if n > 1 && sameRule(out[n-2], r) {
				continue
			}
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// isPadding reports whether gap, followed by next, only covers the bytes a
// compiler adds to align the next function to 16: no code runs there, and
// dropping these rows saves a tenth of the rows of a typical file (1.4 M
// of 14.3 M on a Debian /usr).
func isPadding(gap, next Row, base uint64) bool {
	return gap.CFA() == CFAGap && next.PC-gap.PC < 16 && (base+uint64(next.PC))%16 == 0
}
