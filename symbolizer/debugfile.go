package symbolizer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Caps on separate debug data: MiniDebugInfo inflates to a symbol table
// (Fedora's are tens of KB to a few MB); a debug file is hashed for its
// CRC only up to this size.
const (
	maxMiniDebugInfoBytes = 64 << 20
	maxDebugFileBytes     = 4 << 30
)

// defaultDebugDir is where distributions install debug files, searched
// after Options.DebugDirs.
const defaultDebugDir = "/usr/lib/debug"

// debugLink is the .gnu_debuglink section: the debug file's base name and
// the CRC32 of its contents.
type debugLink struct {
	name string
	crc  uint32
}

// readDebugLink parses .gnu_debuglink: a NUL-terminated file name, padding
// to 4 bytes, then the CRC32 in the file's byte order.
func readDebugLink(f *elf.File) (debugLink, bool) {
	s := f.Section(".gnu_debuglink")
	if s == nil || s.Size > 4096 {
		return debugLink{}, false
	}
	data, err := sectionData(s, 4096)
	if err != nil {
		return debugLink{}, false
	}
	return parseDebugLink(data, f.ByteOrder == binary.LittleEndian)
}

func parseDebugLink(data []byte, littleEndian bool) (debugLink, bool) {
	end := bytes.IndexByte(data, 0)
	if end <= 0 {
		return debugLink{}, false
	}
	crcOff := (end + 4) &^ 3
	if crcOff+4 > len(data) {
		return debugLink{}, false
	}
	name := string(data[:end])
	if !validDebugLinkName(name) {
		return debugLink{}, false
	}
	c := data[crcOff : crcOff+4]
	crc := uint32(c[0]) | uint32(c[1])<<8 | uint32(c[2])<<16 | uint32(c[3])<<24
	if !littleEndian {
		crc = uint32(c[3]) | uint32(c[2])<<8 | uint32(c[1])<<16 | uint32(c[0])<<24
	}
	return debugLink{name: name, crc: crc}, true
}

// maxDebugLinkNameBytes is NAME_MAX: a .gnu_debuglink name is one file
// name, never a path.
const maxDebugLinkNameBytes = 255

// validDebugLinkName reports whether a .gnu_debuglink name, which the
// traced process chose, is a plain file name: no directory, no "..", no
// control characters, at most NAME_MAX bytes.
func validDebugLinkName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > maxDebugLinkNameBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '/' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// debugFileCandidates lists where the debug file of an object may be, in
// the order gdb searches: by build ID under each debug root, then by
// .gnu_debuglink next to the object, in its .debug folder and under each
// root, then the object's own path under each root. path is the object's
// path as its process sees it: it and the link name are chosen by that
// process, so they only ever select a file inside a root (see
// debugCandidate), never a host path of their own.
func debugFileCandidates(roots []string, buildID string, link debugLink, hasLink bool, path string) []debugCandidate {
	var out []debugCandidate
	if isHexString(buildID) && len(buildID) > 2 {
		for _, root := range roots {
			out = append(out, debugCandidate{
				root: root,
				path: filepath.Join(".build-id", buildID[:2], buildID[2:]+".debug"),
				by:   "build ID", trusted: true,
			})
		}
	}
	if !filepath.IsAbs(path) {
		return out
	}
	// Cleaned so that no ".." is left for the kernel to resolve.
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if hasLink && validDebugLinkName(link.name) {
		out = append(out,
			debugCandidate{path: filepath.Join(dir, link.name), by: "debuglink"},
			debugCandidate{path: filepath.Join(dir, ".debug", link.name), by: "debuglink"},
		)
		for _, root := range roots {
			out = append(out, debugCandidate{root: root, path: filepath.Join(dir, link.name), by: "debuglink"})
		}
	}
	for _, root := range roots {
		out = append(out,
			debugCandidate{root: root, path: path, by: "path"},
			debugCandidate{root: root, path: path + ".debug", by: "path"},
		)
	}
	return out
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// debugCandidate is one place a debug file may be: path resolved inside
// root, a trusted host debug directory, or inside the traced process's
// own root directory when root is "". Only paths built from nothing but
// the build ID are trusted to follow symlinks out of their root (distros'
// .build-id links do); the others resolve with RESOLVE_IN_ROOT.
type debugCandidate struct {
	root    string
	path    string
	by      string // "build ID", "debuglink" or "path": what must match
	trusted bool
}

// debugObject is what a debug file is looked up for.
type debugObject struct {
	buildID string
	link    debugLink
	hasLink bool
	// path is the object's path as its process sees it; self its stat
	// (a stripped object is not its own debug file, and a debug file in
	// the process's root must have the same owner).
	path string
	self *unix.Stat_t
}

// openDebugFile finds and opens the separate debug file of an object and
// checks it belongs to it: the same build ID (when both have one) and, for
// a file found through .gnu_debuglink, the CRC. It returns nil when there
// is none. processRoot is the traced process's root directory (nil when
// the process is gone); the object's own directory is searched only
// through it.
func openDebugFile(roots []string, processRoot *os.File, obj debugObject) (*os.File, elfImage, string) {
	for _, c := range debugFileCandidates(roots, obj.buildID, obj.link, obj.hasLink, obj.path) {
		if c.root == "" && processRoot == nil {
			continue
		}
		f, err := openDebugCandidate(c, processRoot, obj.self)
		if err != nil {
			continue
		}
		ef, err := openELF(f)
		if err != nil {
			f.Close()
			continue
		}
		id := readBuildID(ef.File)
		switch {
		case obj.buildID != "" && id != "" && id != obj.buildID:
			// Another build's debug file: its addresses would be wrong.
		case c.by == "debuglink" && !crcMatches(f, obj.link.crc):
		case c.by == "path" && (obj.buildID == "" || id == "") && !(obj.hasLink && crcMatches(f, obj.link.crc)):
			// Nothing ties it to the object.
		default:
			return f, ef, f.Name()
		}
		f.Close()
	}
	return nil, elfImage{}, ""
}

func crcMatches(f *os.File, want uint32) bool {
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, maxDebugFileBytes)); err != nil {
		return false
	}
	return h.Sum32() == want
}

// newELF is elf.NewFile with debug/elf's panics turned into errors.
func newELF(r io.ReaderAt) (f *elf.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("panic in debug/elf: %v", p)
		}
	}()
	return elf.NewFile(r)
}

// readMiniDebugInfo returns the function symbols of the .gnu_debugdata
// section (MiniDebugInfo, as Fedora and RHEL ship binaries): an
// xz-compressed ELF file holding a .symtab of the functions .dynsym
// lacks. (nil, nil) when there is no such section.
func readMiniDebugInfo(f *elf.File, names *symbolNames) ([]rawSymbol, error) {
	s := f.Section(".gnu_debugdata")
	if s == nil {
		return nil, nil
	}
	data, err := sectionData(s, maxMiniDebugInfoBytes)
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	return parseMiniDebugInfo(data, names)
}

// parseMiniDebugInfo reads the symbols of the xz-compressed ELF file in
// compressed; their names are copied to the heap (inner is not kept).
func parseMiniDebugInfo(compressed []byte, names *symbolNames) ([]rawSymbol, error) {
	zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	inner, err := io.ReadAll(io.LimitReader(zr, maxMiniDebugInfoBytes+1))
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	if len(inner) > maxMiniDebugInfoBytes {
		return nil, fmt.Errorf("MiniDebugInfo inflates past %d bytes", maxMiniDebugInfoBytes)
	}
	ef, err := newELF(bytes.NewReader(inner))
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	syms, _, err := readFunctionSymbols(elfImage{File: ef}, names)
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	if len(syms) == 0 {
		return nil, errors.New("MiniDebugInfo has no function symbols")
	}
	return syms, nil
}
