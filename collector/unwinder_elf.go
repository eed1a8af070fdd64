package collector

// What the unwinder needs to know of a mapped file before it has a table:
// which file it is (so that every process mapping it shares one table),
// where its segments load, and how much CFI it has. The vDSO has no file,
// so its image is read from memory.

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ember-profiler/ember/collector/unwind"
	"github.com/ember-profiler/ember/model"
)

type progLoad struct {
	off, vaddr, filesz uint64
	exec               bool // PF_X: the sampler only installs executable mappings
}

// minCFIBytesPerRow: call-frame information takes about 5.3 bytes per row
// (libc, libLLVM); fewer than one row per 12 bytes would be unusual.
const minCFIBytesPerRow = 12

// identify returns a file's ID, its loadable segments, and the size of the
// CFI its table would be built from (0 for Go, walked by frame pointers).
func identify(f io.ReaderAt) (id string, loads []progLoad, cfiBytes uint64, err error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%w: %v", unwind.ErrNotELF, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, progLoad{p.Off, p.Vaddr, p.Filesz, p.Flags&elf.PF_X != 0})
		}
	}
	if id, err = unwind.FileID(ef); err != nil {
		return "", nil, 0, err
	}
	if ef.Section(".gopclntab") == nil {
		for _, name := range []string{".eh_frame", ".debug_frame"} {
			if s := ef.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Size > 0 {
				cfiBytes = s.Size
				break
			}
		}
	}
	return id, loads, cfiBytes, nil
}

// loadBias returns what to subtract from a runtime address in m to get the
// file's virtual address, from the PT_LOAD segment m maps. A segment's
// mapping starts at its page-aligned offset; with lld's layouts that page
// also ends the previous segment, so an exact start wins over containment.
func loadBias(m *model.Mapping, loads []progLoad) (uint64, bool) {
	bias := func(p progLoad) uint64 { return m.Start - m.Offset + p.off - p.vaddr }
	for _, p := range loads {
		if p.off&^0xfff == m.Offset {
			return bias(p), true
		}
	}
	for _, p := range loads {
		if m.Offset >= p.off&^0xfff && m.Offset < p.off+p.filesz {
			return bias(p), true
		}
	}
	return 0, false
}

// readVDSO copies the vDSO image out of a process's memory.
func readVDSO(procDir string) ([]byte, error) {
	raw, err := os.ReadFile(procDir + "/maps")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasSuffix(line, "[vdso]") {
			continue
		}
		m, _, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		if m.Limit-m.Start > 1<<20 {
			return nil, fmt.Errorf("vDSO of %d bytes", m.Limit-m.Start)
		}
		mem, err := os.Open(procDir + "/mem")
		if err != nil {
			return nil, err
		}
		defer mem.Close()
		img := make([]byte, m.Limit-m.Start)
		if _, err := mem.ReadAt(img, int64(m.Start)); err != nil {
			return nil, fmt.Errorf("read vDSO: %w", err)
		}
		return img, nil
	}
	return nil, errors.New("no [vdso] mapping")
}
