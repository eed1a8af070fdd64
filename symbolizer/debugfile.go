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
	"strings"
	"syscall"

	"github.com/ulikunitz/xz"
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
	if strings.Contains(name, "/") || name == "." || name == ".." {
		return debugLink{}, false // a base name, never a path
	}
	c := data[crcOff : crcOff+4]
	crc := uint32(c[0]) | uint32(c[1])<<8 | uint32(c[2])<<16 | uint32(c[3])<<24
	if !littleEndian {
		crc = uint32(c[3]) | uint32(c[2])<<8 | uint32(c[1])<<16 | uint32(c[0])<<24
	}
	return debugLink{name: name, crc: crc}, true
}

// debugFileCandidates lists where the debug file of an object may be, in
// the order gdb searches: by build ID under each debug root, then by
// .gnu_debuglink next to the object, in its .debug folder and under each
// root, then the object's own path under each root. path is the object's
// path as its process sees it; debug files are looked up on the host.
func debugFileCandidates(roots []string, buildID string, link debugLink, hasLink bool, path string) []debugCandidate {
	var out []debugCandidate
	if len(buildID) > 2 {
		for _, root := range roots {
			out = append(out, debugCandidate{
				path: filepath.Join(root, ".build-id", buildID[:2], buildID[2:]+".debug"),
				by:   "build ID",
			})
		}
	}
	// Mapping paths come from the kernel and are absolute and clean;
	// cleaning again keeps a path with ".." from leaving the debug roots.
	abs := filepath.IsAbs(path)
	path = filepath.Clean("/" + path)
	dir := filepath.Dir(path)
	if hasLink && abs {
		out = append(out,
			debugCandidate{path: filepath.Join(dir, link.name), by: "debuglink"},
			debugCandidate{path: filepath.Join(dir, ".debug", link.name), by: "debuglink"},
		)
		for _, root := range roots {
			out = append(out, debugCandidate{path: filepath.Join(root, dir, link.name), by: "debuglink"})
		}
	}
	if abs {
		for _, root := range roots {
			out = append(out,
				debugCandidate{path: filepath.Join(root, path), by: "path"},
				debugCandidate{path: filepath.Join(root, path+".debug"), by: "path"},
			)
		}
	}
	return out
}

type debugCandidate struct {
	path string
	by   string // "build ID", "debuglink" or "path": what must match
}

// openDebugFile finds and opens the separate debug file of an object and
// checks it belongs to it: the same build ID (when both have one) and, for
// a file found through .gnu_debuglink, the CRC. It returns nil when there
// is none. The object's own path is skipped: a stripped object is not its
// own debug file.
func openDebugFile(roots []string, buildID string, link debugLink, hasLink bool, objPath string, self os.FileInfo) (*os.File, elfImage, string) {
	for _, c := range debugFileCandidates(roots, buildID, link, hasLink, objPath) {
		f, err := os.OpenFile(c.path, os.O_RDONLY|openNonBlock, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxDebugFileBytes || (self != nil && os.SameFile(fi, self)) {
			f.Close()
			continue
		}
		ef, err := openELF(f)
		if err != nil {
			f.Close()
			continue
		}
		id := readBuildID(ef.File)
		switch {
		case buildID != "" && id != "" && id != buildID:
			// Another build's debug file: its addresses would be wrong.
		case c.by == "debuglink" && !crcMatches(f, link.crc):
		case c.by == "path" && (buildID == "" || id == "") && !(hasLink && crcMatches(f, link.crc)):
			// Nothing ties it to the object.
		default:
			return f, ef, c.path
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
func readMiniDebugInfo(f *elf.File) ([]elfSymbol, error) {
	s := f.Section(".gnu_debugdata")
	if s == nil {
		return nil, nil
	}
	data, err := sectionData(s, maxMiniDebugInfoBytes)
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	return parseMiniDebugInfo(data)
}

func parseMiniDebugInfo(compressed []byte) ([]elfSymbol, error) {
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
	syms, err := readFunctionSymbols(ef)
	if err != nil {
		return nil, fmt.Errorf("MiniDebugInfo: %w", err)
	}
	if len(syms) == 0 {
		return nil, errors.New("MiniDebugInfo has no function symbols")
	}
	return syms, nil
}

// openNonBlock keeps a FIFO planted where a debug file is looked for from
// blocking the open.
const openNonBlock = syscall.O_NONBLOCK
