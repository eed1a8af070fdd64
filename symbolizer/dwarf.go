package symbolizer

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-delve/delve/pkg/dwarf/godwarf"
	"github.com/go-delve/delve/pkg/dwarf/reader"
)

// Limits on one file's DWARF, so one huge or hostile file cannot stall the
// rest: the time to index its compile units, and the debug entries walked
// to index one unit's functions.
const (
	maxDWARFIndexDuration = 5 * time.Second
	// maxDWARFLookupDuration bounds the time all lookups in one file may
	// spend reading its units; past it the file's DWARF is given up and
	// its symbol tables name its frames.
	maxDWARFLookupDuration = 10 * time.Second
	maxUnitEntries         = 4 << 20
	// maxOriginHops bounds DW_AT_abstract_origin / DW_AT_specification
	// chains; real ones are one or two long, hostile ones can be cycles.
	maxOriginHops = 8
)

// dwarfResolver names addresses from DWARF: the function, its source file
// and line, and the calls inlined at the address. Compile units are
// indexed by their address ranges up front; a unit's functions and line
// table are read the first time an address falls in it.
//
// Each unit is read through a dwarf.Data of its own bytes, made when it is
// needed and a few kept: debug/dwarf decodes the abbreviation tables of
// every unit it is given at once, which for libc6-dbg's 2,063 units was
// 12.8 MB of a 22 MB parse, held for as long as the file stayed cached.
// A file whose units refer into each other (DW_FORM_ref_addr: Go, LTO,
// dwz) cannot be cut up and is read as a whole.
type dwarfResolver struct {
	sections map[string][]byte
	// whole reads the file as one; nil when units are read one by one.
	whole    *dwarf.Data
	unitData unitDataCache
	line     []byte // .debug_line, kept to check headers before parsing
	units    []dwarfUnit
	ranges   []unitRange // sorted by lo
	// names caches the resolved name of a DIE (following abstract origins
	// and specifications), shared by every address in the file.
	names map[dieKey]string
	// sectionBytes is what the raw sections hold; sizeBytes adds the
	// tables built lazily.
	sectionBytes, tableBytes int64
	// abbrevBytes estimates the abbreviation tables debug/dwarf decodes
	// up front for a file read whole, which it does not let us measure.
	abbrevBytes int64
	// spent is the time lookups have taken so far; see
	// maxDWARFLookupDuration.
	spent time.Duration
	// lineUnits are the units with a decoded line table, oldest first.
	lineUnits []*dwarfUnit
}

// dieKey is a DIE: its unit and its offset in the data the unit is read
// through.
type dieKey struct {
	unit int
	off  dwarf.Offset
}

// maxLineTables bounds the decoded line tables one file keeps: touched
// over months, every unit of a large library would stay decoded, while the
// address cache in front answers the hot addresses without them.
const maxLineTables = 64

// keepLineTable records that u's line table was decoded, dropping the
// table decoded longest ago past maxLineTables.
func (r *dwarfResolver) keepLineTable(u *dwarfUnit) {
	r.lineUnits = append(r.lineUnits, u)
	if len(r.lineUnits) <= maxLineTables {
		return
	}
	old := r.lineUnits[0]
	r.lineUnits = r.lineUnits[1:]
	if old.lines != nil {
		r.tableBytes -= old.lines.sizeBytes()
		old.lines, old.lineErr = nil, nil
	}
}

// unitDataCache keeps the dwarf.Data of the units read last.
type unitDataCache struct {
	unit []int
	data []*dwarf.Data
}

const unitDataCached = 8

type unitRange struct {
	lo, hi uint64
	unit   int
}

type dwarfUnit struct {
	start, end uint64       // the unit's bytes in .debug_info
	offset     dwarf.Offset // of its compile unit DIE, in the unit's data
	stmtList   int64        // offset in .debug_line, -1 when the unit has none
	indexed    bool
	funcs      []funcRange // sorted by lo
	lines      *lineTable
	lineErr    error
}

// funcRange is one address range of a concrete (out-of-line) function.
type funcRange struct {
	lo, hi uint64
	offset dwarf.Offset
}

// dwarfSectionNames are the sections read; .debug_info and .debug_abbrev
// are required.
var dwarfSectionNames = []string{
	".debug_abbrev", ".debug_info", ".debug_str", ".debug_line", ".debug_ranges",
	".debug_addr", ".debug_line_str", ".debug_str_offsets", ".debug_rnglists",
}

// newDWARFResolver reads f's DWARF sections (at most maxBytes in all) and
// indexes its compile units. It returns an error, never panics, on
// malformed DWARF, and (nil, nil) when f has no DWARF.
func newDWARFResolver(f elfImage, maxBytes int64) (r *dwarfResolver, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("parse DWARF: panic: %v", p)
		}
	}()
	if f.Section(".debug_info") == nil {
		return nil, nil
	}
	sections, heap, err := readDWARFSections(f, maxBytes)
	if err != nil {
		return nil, err
	}
	r, err = dwarfResolverFromSections(sections)
	if r != nil {
		r.sectionBytes = heap // mapped sections are the page cache's
	}
	return r, err
}

// readDWARFSections reads the DWARF sections of f, at most maxBytes in
// all, and returns how many of their bytes are on the heap.
func readDWARFSections(f elfImage, maxBytes int64) (map[string][]byte, int64, error) {
	sections := map[string][]byte{}
	var total, heap int64
	for _, name := range dwarfSectionNames {
		s := f.Section(name)
		if s == nil {
			continue
		}
		data, h, err := f.sectionData(s, min(maxBytes-total, maxSectionBytes))
		if err != nil {
			return nil, 0, fmt.Errorf("parse DWARF: %w", err)
		}
		total += int64(len(data))
		heap += h
		sections[name] = data
	}
	return sections, heap, nil
}

// lazyDWARF parses a file's DWARF on its first lookup. Go binaries name
// their code from the line table first, and their DWARF (compressed, so
// inflated into the heap: 30 MB and more for a large binary) is only
// needed for what the line table does not cover, such as cgo's C code.
type lazyDWARF struct {
	file     elfImage
	maxBytes int64
	parsed   bool
	dwarf    *dwarfResolver
	err      error
}

func (l *lazyDWARF) resolve(pc uint64) ([]frame, bool) {
	if !l.parsed {
		l.parsed = true
		l.dwarf, l.err = newDWARFResolver(l.file, l.maxBytes)
		l.file = elfImage{} // the resolver keeps what it needs
	}
	if l.dwarf == nil {
		return nil, false
	}
	return l.dwarf.resolve(pc)
}

func (l *lazyDWARF) sizeBytes() int64 {
	if l.dwarf == nil {
		return 64
	}
	return l.dwarf.sizeBytes()
}

// dwarfResolverFromSections indexes DWARF given its sections by name: the
// entry point the fuzz tests drive.
func dwarfResolverFromSections(sections map[string][]byte) (r *dwarfResolver, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("parse DWARF: panic: %v", p)
		}
	}()
	var total int64
	for _, data := range sections {
		total += int64(len(data))
	}
	if sections[".debug_abbrev"] == nil {
		return nil, errors.New("parse DWARF: .debug_info without .debug_abbrev")
	}
	r = &dwarfResolver{
		sections:     sections,
		line:         sections[".debug_line"],
		names:        make(map[dieKey]string),
		sectionBytes: total,
	}
	if refersAcrossUnits(sections[".debug_abbrev"]) {
		if r.whole, err = r.newData(sections[".debug_info"]); err != nil {
			return nil, err
		}
		r.abbrevBytes = int64(len(sections[".debug_abbrev"])) * abbrevHeapFactor
	}
	if err := r.indexUnits(); err != nil {
		return nil, err
	}
	if len(r.ranges) == 0 {
		return nil, nil // DWARF with no code, e.g. types only
	}
	return r, nil
}

// newData makes a dwarf.Data of the file's sections with info as its
// .debug_info: the whole section or one unit's bytes.
func (r *dwarfResolver) newData(info []byte) (*dwarf.Data, error) {
	sec := r.sections
	d, err := dwarf.New(sec[".debug_abbrev"], nil, nil, info, sec[".debug_line"], nil, sec[".debug_ranges"], sec[".debug_str"])
	if err != nil {
		return nil, fmt.Errorf("parse DWARF: %w", err)
	}
	for _, name := range []string{".debug_addr", ".debug_line_str", ".debug_str_offsets", ".debug_rnglists"} {
		if data := sec[name]; data != nil {
			if err := d.AddSection(name, data); err != nil {
				return nil, fmt.Errorf("parse DWARF: %s: %w", name, err)
			}
		}
	}
	return d, nil
}

// data returns the dwarf.Data unit i is read through.
func (r *dwarfResolver) data(i int) (*dwarf.Data, error) {
	if r.whole != nil {
		return r.whole, nil
	}
	c := &r.unitData
	for j, u := range c.unit {
		if u == i {
			return c.data[j], nil
		}
	}
	u := r.units[i]
	d, err := r.newData(r.sections[".debug_info"][u.start:u.end])
	if err != nil {
		return nil, err
	}
	if len(c.unit) == unitDataCached {
		c.unit, c.data = c.unit[1:], c.data[1:]
	}
	c.unit, c.data = append(c.unit, i), append(c.data, d)
	return d, nil
}

// indexUnits records each compile unit's address ranges, skipping the
// units' contents.
func (r *dwarfResolver) indexUnits() error {
	if r.whole != nil {
		return r.indexWholeUnits()
	}
	deadline := time.Now().Add(maxDWARFIndexDuration)
	info := r.sections[".debug_info"]
	for start, n := uint64(0), 0; start < uint64(len(info)); n++ {
		end, err := unitEnd(info, start)
		if err != nil {
			return fmt.Errorf("parse DWARF: compile unit %d: %w", n, err)
		}
		if n%256 == 0 && time.Now().After(deadline) {
			return fmt.Errorf("parse DWARF: indexing compile units took over %s", maxDWARFIndexDuration)
		}
		// Read once for its ranges, then let go: the unit's data is made
		// again if an address falls in it.
		d, err := r.newData(info[start:end])
		if err != nil {
			return fmt.Errorf("parse DWARF: compile unit %d: %w", n, err)
		}
		rd := d.Reader()
		e, err := rd.Next()
		if err != nil {
			return fmt.Errorf("parse DWARF: compile unit %d: %w", n, err)
		}
		if e != nil && e.Tag == dwarf.TagCompileUnit {
			r.addUnit(d, e, start, end)
		}
		start = end
	}
	r.finishIndex()
	return nil
}

// unitEnd returns where the unit whose header is at start in .debug_info
// ends, from its initial length.
func unitEnd(info []byte, start uint64) (uint64, error) {
	if start+4 > uint64(len(info)) {
		return 0, errors.New("unit header truncated")
	}
	length, size := uint64(binary.LittleEndian.Uint32(info[start:])), uint64(4)
	switch {
	case length == 0xffffffff:
		if start+12 > uint64(len(info)) {
			return 0, errors.New("unit header truncated")
		}
		length, size = binary.LittleEndian.Uint64(info[start+4:]), 12
	case length >= 0xfffffff0:
		return 0, fmt.Errorf("reserved unit length %#x", length)
	}
	if length > uint64(len(info))-start-size {
		return 0, fmt.Errorf("unit of %d bytes past the end of .debug_info", length)
	}
	return start + size + length, nil
}

// indexWholeUnits is indexUnits for a file read as one.
func (r *dwarfResolver) indexWholeUnits() error {
	deadline := time.Now().Add(maxDWARFIndexDuration)
	rd := r.whole.Reader()
	for n := 0; ; n++ {
		e, err := rd.Next()
		if err != nil {
			return fmt.Errorf("parse DWARF: compile unit %d: %w", n, err)
		}
		if e == nil {
			break
		}
		if n%256 == 0 && time.Now().After(deadline) {
			return fmt.Errorf("parse DWARF: indexing compile units took over %s", maxDWARFIndexDuration)
		}
		if e.Tag == dwarf.TagCompileUnit {
			r.addUnit(r.whole, e, 0, 0)
		}
		rd.SkipChildren()
	}
	r.finishIndex()
	return nil
}

// addUnit records a compile unit and its address ranges.
func (r *dwarfResolver) addUnit(d *dwarf.Data, cu *dwarf.Entry, start, end uint64) {
	u := dwarfUnit{start: start, end: end, offset: cu.Offset, stmtList: -1}
	if off, ok := cu.Val(dwarf.AttrStmtList).(int64); ok {
		u.stmtList = off
	}
	rs, err := d.Ranges(cu)
	if err != nil {
		return // one unit with broken ranges does not spoil the file
	}
	for _, rg := range rs {
		if rg[1] > rg[0] {
			r.ranges = append(r.ranges, unitRange{lo: rg[0], hi: rg[1], unit: len(r.units)})
		}
	}
	r.units = append(r.units, u)
}

func (r *dwarfResolver) finishIndex() {
	sort.Slice(r.ranges, func(i, j int) bool { return r.ranges[i].lo < r.ranges[j].lo })
	r.tableBytes = int64(len(r.units))*80 + int64(len(r.ranges))*24
}

// refersAcrossUnits reports whether any abbreviation in .debug_abbrev has
// an attribute in a form that refers outside its unit (or that cannot be
// read, to be safe): such a file must be read as a whole.
func refersAcrossUnits(abbrev []byte) bool {
	b := abbrev
	// ULEB128 is the encoding binary.Uvarint reads.
	uleb := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	for len(b) > 0 {
		code, ok := uleb()
		if !ok {
			return true
		}
		if code == 0 {
			continue // the end of one unit's table
		}
		if _, ok := uleb(); !ok || len(b) == 0 { // tag, then the children flag
			return true
		}
		b = b[1:]
		for n := 0; ; n++ {
			attr, ok1 := uleb()
			form, ok2 := uleb()
			if !ok1 || !ok2 || n > 1<<16 {
				return true
			}
			if attr == 0 && form == 0 {
				break
			}
			switch form {
			case formRefAddr, formRefSup4, formRefSup8, formGNURefAlt:
				return true
			case formImplicitConst: // an SLEB128 follows
				for len(b) > 0 && b[0]&0x80 != 0 {
					b = b[1:]
				}
				if len(b) == 0 {
					return true
				}
				b = b[1:]
			}
		}
	}
	return false
}

// Attribute forms that refer outside the unit, and the one that carries
// its value in the abbreviation.
const (
	formRefAddr       = 0x10
	formRefSup4       = 0x1c
	formImplicitConst = 0x21
	formRefSup8       = 0x24
	formGNURefAlt     = 0x1f20
)

func (r *dwarfResolver) sizeBytes() int64 { return r.sectionBytes + r.tableBytes + r.abbrevBytes }

// abbrevHeapFactor is the heap debug/dwarf's decoded abbreviation tables
// take per byte of .debug_abbrev: 12.8 MB for the 983 KB (inflated) of
// libc6-dbg's libc (2,063 units), measured with runtime.MemStats around a
// parse, which grew the heap by 22.3 MB in all.
const abbrevHeapFactor = 13

// unitFor chooses the compile unit by address ranges (-1: none): delve's
// PCToLine on the wrong unit still answers, wrongly.
func (r *dwarfResolver) unitFor(pc uint64) int {
	i := sort.Search(len(r.ranges), func(i int) bool { return r.ranges[i].lo > pc }) - 1
	// Ranges may nest or overlap (a unit spanning another's code); look
	// back a little for one that holds pc.
	for j := i; j >= 0 && j > i-8; j-- {
		if pc < r.ranges[j].hi {
			return r.ranges[j].unit
		}
	}
	return -1
}

func (r *dwarfResolver) resolve(pc uint64) (frames []frame, ok bool) {
	if r.spent > maxDWARFLookupDuration {
		return nil, false
	}
	start := time.Now()
	defer func() {
		r.spent += time.Since(start)
		if p := recover(); p != nil {
			frames, ok = nil, false
		}
	}()
	ui := r.unitFor(pc)
	if ui < 0 {
		return nil, false
	}
	u := &r.units[ui]
	d, err := r.data(ui)
	if err != nil {
		return nil, false
	}
	if !u.indexed {
		r.indexFunctions(d, u)
	}
	fn, found := findFunc(u.funcs, pc)
	if !found {
		return nil, false
	}
	tree, err := inlineTree(d, fn.offset)
	if err != nil {
		return nil, false
	}
	// Innermost inlined call first, then the function itself.
	calls := append(reader.InlineStack(tree, pc), tree)
	lines := r.lineTable(d, u)
	var file string
	var lineNo int64
	if lines != nil {
		file, lineNo, _ = lines.lookup(pc)
	}
	frames = make([]frame, len(calls))
	for i, c := range calls {
		name := r.name(d, ui, c.Entry.(*dwarf.Entry))
		frames[i] = frame{Function: name, SystemName: name}
		if i == 0 {
			frames[i].File, frames[i].Line = file, lineNo
			continue
		}
		// The caller's position is the call site recorded on the inlined
		// call it made.
		callee := calls[i-1].Entry.(*dwarf.Entry)
		frames[i].File = callFile(lines, callee)
		if l, ok := callee.Val(dwarf.AttrCallLine).(int64); ok {
			frames[i].Line = l
		}
	}
	return frames, true
}

func findFunc(funcs []funcRange, pc uint64) (funcRange, bool) {
	i := sort.Search(len(funcs), func(i int) bool { return funcs[i].lo > pc }) - 1
	for j := i; j >= 0 && j > i-8; j-- {
		if pc < funcs[j].hi {
			return funcs[j], true
		}
	}
	return funcRange{}, false
}

// indexFunctions records the address ranges of every concrete function of
// a unit, at any depth (C++ puts them inside namespaces), without reading
// their bodies.
func (r *dwarfResolver) indexFunctions(d *dwarf.Data, u *dwarfUnit) {
	u.indexed = true
	rd := d.Reader()
	rd.Seek(u.offset)
	if e, err := rd.Next(); err != nil || e == nil || !e.Children {
		return
	}
	depth := 1
	for n := 0; depth > 0 && n < maxUnitEntries; n++ {
		e, err := rd.Next()
		if err != nil || e == nil {
			break
		}
		switch {
		case e.Tag == 0:
			depth--
			continue
		case e.Tag == dwarf.TagSubprogram:
			if rs, err := d.Ranges(e); err == nil {
				for _, rg := range rs {
					if rg[1] > rg[0] {
						u.funcs = append(u.funcs, funcRange{lo: rg[0], hi: rg[1], offset: e.Offset})
					}
				}
			}
			rd.SkipChildren()
			continue
		}
		if e.Children {
			depth++
		}
	}
	sort.Slice(u.funcs, func(i, j int) bool { return u.funcs[i].lo < u.funcs[j].lo })
	r.tableBytes += int64(len(u.funcs)) * 24
}

// inlineTree loads a function's DIE with its lexical blocks and inlined
// calls, in the shape reader.InlineStack walks. (godwarf.LoadTree would do
// it too, but follows abstract-origin chains without a bound.)
func inlineTree(d *dwarf.Data, off dwarf.Offset) (*godwarf.Tree, error) {
	rd := d.Reader()
	rd.Seek(off)
	e, err := rd.Next()
	if err != nil || e == nil {
		return nil, fmt.Errorf("read function at %#x: %v", off, err)
	}
	root := treeNode(d, e)
	if !e.Children {
		return root, nil
	}
	stack := []*godwarf.Tree{root}
	for n := 0; len(stack) > 0 && n < maxUnitEntries; n++ {
		e, err := rd.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		switch e.Tag {
		case dwarf.TagSubprogram, dwarf.TagInlinedSubroutine, dwarf.TagLexDwarfBlock:
			node := treeNode(d, e)
			parent := stack[len(stack)-1]
			parent.Children = append(parent.Children, node)
			if e.Children {
				stack = append(stack, node)
			}
		default:
			rd.SkipChildren()
		}
	}
	return root, nil
}

func treeNode(d *dwarf.Data, e *dwarf.Entry) *godwarf.Tree {
	t := &godwarf.Tree{Entry: e, Tag: e.Tag, Offset: e.Offset}
	if rs, err := d.Ranges(e); err == nil {
		t.Ranges = rs
	}
	return t
}

// name returns the linkage (mangled) name of a function DIE if it or the
// DIEs it refers to have one, else its plain name, following abstract
// origins and specifications a bounded number of hops.
func (r *dwarfResolver) name(d *dwarf.Data, unit int, e *dwarf.Entry) string {
	start := dieKey{unit, e.Offset}
	if name, ok := r.names[start]; ok {
		return name
	}
	var plain string
	rd := d.Reader()
	for hop := 0; e != nil && hop < maxOriginHops; hop++ {
		for _, a := range []dwarf.Attr{dwarf.AttrLinkageName, attrMIPSLinkageName} {
			if s, ok := e.Val(a).(string); ok && s != "" {
				r.names[start] = s
				return s
			}
		}
		if s, ok := e.Val(dwarf.AttrName).(string); ok && plain == "" {
			plain = s
		}
		next, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
		if !ok {
			next, ok = e.Val(dwarf.AttrSpecification).(dwarf.Offset)
		}
		if !ok {
			break
		}
		rd.Seek(next)
		e, _ = rd.Next()
	}
	r.names[start] = plain
	r.tableBytes += int64(len(plain)) + 48
	return plain
}

// attrMIPSLinkageName is DW_AT_MIPS_linkage_name, which older GCC and
// some Rust versions emit instead of DW_AT_linkage_name.
const attrMIPSLinkageName dwarf.Attr = 0x2007

// callFile names the file of an inlined call's DW_AT_call_file, an index
// into the unit's line table files.
func callFile(lines *lineTable, callee *dwarf.Entry) string {
	idx, ok := callee.Val(dwarf.AttrCallFile).(int64)
	if !ok {
		return ""
	}
	return lines.file(idx)
}

// lineTable returns the unit's parsed line table, parsing it the first
// time. A table that fails validation is remembered as failed.
func (r *dwarfResolver) lineTable(d *dwarf.Data, u *dwarfUnit) *lineTable {
	if u.lines != nil || u.lineErr != nil {
		return u.lines
	}
	if u.stmtList < 0 {
		u.lineErr = errors.New("no line table")
		return nil
	}
	rd := d.Reader()
	rd.Seek(u.offset)
	cu, err := rd.Next()
	if err != nil || cu == nil {
		u.lineErr = fmt.Errorf("read compile unit at %#x: %v", u.offset, err)
		return nil
	}
	u.lines, u.lineErr = parseLineTable(d, cu, r.line, u.stmtList)
	if u.lines != nil {
		r.tableBytes += u.lines.sizeBytes()
		r.keepLineTable(u)
	}
	return u.lines
}
