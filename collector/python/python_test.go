package python

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ember-profiler/ember/model"
)

// Line tables as each version's compiler wrote them for one function:
// def f():        (line 10)
//
//	x = 1       (line 11)
//	return x    (line 12)
func TestLineTables(t *testing.T) {
	for _, c := range []struct {
		name   string
		minor  int
		table  []byte
		offset uint64
		want   int64
	}{
		// 3.8: (bytes, line delta) pairs; offsets in bytes.
		{"3.8 first", 8, []byte{0, 1, 4, 1}, 0, 11},
		{"3.8 second", 8, []byte{0, 1, 4, 1}, 6, 12},
		// 3.10: (bytes covered, line delta); offsets in code units.
		{"3.10 first", 10, []byte{4, 1, 4, 1}, 1, 11},
		{"3.10 second", 10, []byte{4, 1, 4, 1}, 2, 12},
		{"3.10 no line", 10, []byte{2, 0x80, 4, 2}, 0, 10},
		// 3.11: RESUME (one-line form, delta 0), then a one-line entry of
		// delta 1 for 2 units, a short entry for 1, a one-line delta 1.
		{"3.11 resume", 11, []byte{0x80 | 10<<3, 0, 0, 0x80 | 11<<3 | 1, 4, 5, 0x80 | 0<<3, 0, 0x80 | 11<<3, 4, 5}, 0, 10},
		{"3.11 first", 11, []byte{0x80 | 10<<3, 0, 0, 0x80 | 11<<3 | 1, 4, 5, 0x80 | 0<<3, 0, 0x80 | 11<<3, 4, 5}, 2, 11},
		{"3.11 short", 11, []byte{0x80 | 10<<3, 0, 0, 0x80 | 11<<3 | 1, 4, 5, 0x80 | 0<<3, 0, 0x80 | 11<<3, 4, 5}, 3, 11},
		{"3.11 second", 11, []byte{0x80 | 10<<3, 0, 0, 0x80 | 11<<3 | 1, 4, 5, 0x80 | 0<<3, 0, 0x80 | 11<<3, 4, 5}, 4, 12},
		// Long form: line delta -3 (svarint 7), end line, two columns.
		{"3.12 long", 12, []byte{0x80 | 14<<3, 7, 0, 1, 2}, 0, 7},
		{"3.12 no location", 12, []byte{0x80 | 15<<3}, 0, 10},
	} {
		if got := lineAt(c.minor, c.table, 10, c.offset); got != c.want {
			t.Errorf("%s: line %d, want %d", c.name, got, c.want)
		}
	}
}

// FuzzLineTables: a table read from another process is outside input.
func FuzzLineTables(f *testing.F) {
	f.Add(11, []byte{0x80 | 14<<3, 0x7f, 0x7f, 0x7f}, uint64(3))
	f.Add(10, []byte{4, 0x80}, uint64(1))
	f.Fuzz(func(t *testing.T, minor int, table []byte, offset uint64) {
		lineAt(minor, table, 1, offset)
	})
}

// fakeMemory is a process's memory: blocks by their start address.
type fakeMemory map[uint64][]byte

func (m fakeMemory) ReadAt(p []byte, addr uint64) error {
	for start, b := range m {
		if addr >= start && addr+uint64(len(p)) <= start+uint64(len(b)) {
			copy(p, b[addr-start:])
			return nil
		}
	}
	return errors.New("unmapped")
}

// asciiString is a compact ASCII str object of the 3.11 layout.
func asciiString(s string) []byte {
	b := make([]byte, 48+len(s)+1)
	binary.LittleEndian.PutUint64(b[unicodeLen:], uint64(len(s)))
	binary.LittleEndian.PutUint32(b[unicodeState:], 1<<2|1<<5|1<<6) // kind 1, compact, ascii
	copy(b[48:], s)
	return b
}

func TestSpliceAndName(t *testing.T) {
	l, _ := LayoutFor(11)
	const (
		codeType = 0x1000
		code     = 0x2000
		name     = 0x3000
		file     = 0x4000
		table    = 0x5000
	)
	codeObj := make([]byte, l.CodeSize)
	put := func(off uint16, v uint64) { binary.LittleEndian.PutUint64(codeObj[off:], v) }
	put(objectType, codeType)
	put(l.CodeQualname, name)
	put(l.CodeFilename, file)
	put(l.CodeLineTable, table)
	binary.LittleEndian.PutUint32(codeObj[l.CodeFirstLine:], 20)
	lines := []byte{0x80 | 10<<3 | 7, 0, 0} // 8 units of line 20
	tbl := make([]byte, bytesData+len(lines))
	binary.LittleEndian.PutUint64(tbl[bytesSize:], uint64(len(lines)))
	copy(tbl[bytesData:], lines)
	mem := fakeMemory{code: codeObj, name: asciiString("Job.run"), file: asciiString("/srv/job.py"), table: tbl}

	in := &Interpreter{Layout: l, CodeType: codeType, Eval: []Range{{0x100, 0x200}}}
	p := NewProcess(in, mem)
	w := func(runEnd bool) uint64 {
		v := wordMark | 3<<codeBits | code>>3
		if runEnd {
			v |= wordRunEnd
		}
		return v
	}
	// leaf in C, an eval frame running two Python frames, a C frame, an
	// eval frame running one, main.
	pcs := []uint64{0x900, 0x150, 0x950, 0x151, 0x990, w(false), w(true), w(true)}
	var st Stats
	got := p.Splice(pcs, &st)
	kinds := ""
	for _, f := range got {
		if f.Kind == model.FramePython {
			kinds += "P"
			if f.Function != "Job.run" || f.File != "/srv/job.py" || f.Line != 20 {
				t.Errorf("frame %+v, want Job.run at /srv/job.py:20", f)
			}
		} else {
			kinds += "n"
		}
	}
	if kinds != "nPPnPn" {
		t.Errorf("spliced as %s, want nPPnPn", kinds)
	}
	if st.Named != 3 {
		t.Errorf("named %d, want 3", st.Named)
	}
	// Freed and reused: the name pointer changed.
	p.NextRound()
	put(l.CodeQualname, 0x6000)
	mem[0x6000] = asciiString("other")
	if f := p.frame(w(true), &st); f.Function != "other" {
		t.Errorf("after reuse named %q, want other", f.Function)
	}
	// Gone: frames not cached are named so.
	p.Gone = true
	if f := p.frame(wordMark|0x7000>>3, &st); f.Function != NameExited {
		t.Errorf("gone: %q", f.Function)
	}
}

func TestUnknownVersion(t *testing.T) {
	if _, err := LayoutFor(14); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("3.14: %v, want ErrUnknownVersion", err)
	}
}
