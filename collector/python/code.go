package python

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// Memory reads another process's memory.
type Memory interface {
	// ReadAt fills p from address addr, or fails.
	ReadAt(p []byte, addr uint64) error
}

// A Code is what a code object says of its function.
type Code struct {
	Function, File string
	FirstLine      int64
	lineTable      []byte
	// qualDerived: Function was looked for in the source (before 3.11);
	// qualFallback says why it stayed co_name.
	qualDerived  bool
	qualFallback QualnameFallback
	// What it is checked by, so a code object freed and its memory reused
	// is not taken for the one named before.
	nameRef, fileRef, tableRef uint64
}

// Line is the source line at an instruction offset of the code.
func (c *Code) Line(minor int, offset uint64) int64 {
	return lineAt(minor, c.lineTable, c.FirstLine, offset)
}

// Limits on what is read of another process: names and tables are short,
// and a corrupt length must not make the daemon allocate.
const (
	maxStringChars = 1024
	maxLineTable   = 1 << 20
)

var errNotCode = errors.New("not a code object")

// header reads a code object's fixed part.
func header(mem Memory, l *Layout, addr uint64) ([]byte, error) {
	raw := make([]byte, l.CodeSize)
	if err := mem.ReadAt(raw, addr); err != nil {
		return nil, err
	}
	return raw, nil
}

func word(raw []byte, off uint16) uint64 {
	if int(off)+8 > len(raw) {
		return 0
	}
	return binary.LittleEndian.Uint64(raw[off:])
}

// codeRefs are the fields a cached Code is checked against.
func codeRefs(raw []byte, l *Layout) (name, file, table uint64, first int64) {
	name = word(raw, l.CodeName)
	if l.CodeQualname != 0 {
		name = word(raw, l.CodeQualname)
	}
	return name, word(raw, l.CodeFilename), word(raw, l.CodeLineTable), int64(int32(binary.LittleEndian.Uint32(raw[l.CodeFirstLine:])))
}

// readCode names the code object at addr. codeType, when not 0, is the
// address of PyCode_Type, which the object's type must be.
func readCode(mem Memory, l *Layout, addr, codeType uint64) (*Code, error) {
	raw, err := header(mem, l, addr)
	if err != nil {
		return nil, err
	}
	if codeType != 0 && word(raw, objectType) != codeType {
		return nil, errNotCode
	}
	c := &Code{}
	c.nameRef, c.fileRef, c.tableRef, c.FirstLine = codeRefs(raw, l)
	if c.Function, err = readString(mem, l, c.nameRef); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if c.File, err = readString(mem, l, c.fileRef); err != nil {
		return nil, fmt.Errorf("file name: %w", err)
	}
	if c.lineTable, err = readBytes(mem, c.tableRef); err != nil {
		return nil, fmt.Errorf("line table: %w", err)
	}
	return c, nil
}

// stillValid reports whether the code object at addr is still the one c
// was read from.
func (c *Code) stillValid(mem Memory, l *Layout, addr uint64) bool {
	raw, err := header(mem, l, addr)
	if err != nil {
		return false
	}
	name, file, table, first := codeRefs(raw, l)
	return name == c.nameRef && file == c.fileRef && table == c.tableRef && first == c.FirstLine
}

// isCodeType reports whether the type object at addr is named "code".
func isCodeType(mem Memory, typ uint64) bool {
	var b [8]byte
	if mem.ReadAt(b[:], typ+typeName) != nil {
		return false
	}
	var name [5]byte
	if mem.ReadAt(name[:], binary.LittleEndian.Uint64(b[:])) != nil {
		return false
	}
	return string(name[:]) == "code\x00"
}

// readString reads a str object: compact (as every code object's names
// are), of one, two or four bytes a character.
func readString(mem Memory, l *Layout, addr uint64) (string, error) {
	var h [40]byte
	if addr == 0 {
		return "", errors.New("no string")
	}
	if err := mem.ReadAt(h[:], addr); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint64(h[unicodeLen:])
	state := binary.LittleEndian.Uint32(h[unicodeState:])
	kind, compact, ascii := state>>2&7, state>>5&1 == 1, state>>6&1 == 1
	if !compact {
		return "", errors.New("not a compact string")
	}
	if n > maxStringChars {
		n = maxStringChars
	}
	data := addr + uint64(l.UnicodeCompactSize)
	if ascii {
		data = addr + uint64(l.UnicodeASCIISize)
	}
	if kind != 1 && kind != 2 && kind != 4 {
		return "", fmt.Errorf("string kind %d", kind)
	}
	raw := make([]byte, n*uint64(kind))
	if err := mem.ReadAt(raw, data); err != nil {
		return "", err
	}
	switch kind {
	case 1:
		if ascii {
			return string(raw), nil
		}
		r := make([]rune, n)
		for i, b := range raw {
			r[i] = rune(b) // Latin-1
		}
		return string(r), nil
	case 2:
		u := make([]uint16, n)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
		return string(utf16.Decode(u)), nil
	}
	r := make([]rune, n)
	for i := range r {
		r[i] = rune(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return string(r), nil
}

// readBytes reads a bytes object.
func readBytes(mem Memory, addr uint64) ([]byte, error) {
	var h [bytesData]byte
	if addr == 0 {
		return nil, errors.New("no bytes")
	}
	if err := mem.ReadAt(h[:], addr); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(h[bytesSize:])
	if n > maxLineTable {
		return nil, fmt.Errorf("%d bytes, too many", n)
	}
	out := make([]byte, n)
	if err := mem.ReadAt(out, addr+bytesData); err != nil {
		return nil, err
	}
	return out, nil
}
