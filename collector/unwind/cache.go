package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cache keeps built tables on disk by file ID, so a restart does not parse
// every library again. Every file is checked (magic, version, sizes,
// checksum) and a bad one is rebuilt, never trusted. The directory is kept
// under a size bound by removing the least recently used files.
type Cache struct {
	dir      string
	maxBytes int64

	mu        sync.Mutex
	evictions uint64
}

// DefaultCacheBytes bounds a cache directory unless told otherwise: the
// tables of every ELF file on a typical host take about 110 MiB.
const DefaultCacheBytes = 256 << 20

// cacheMagic changes with the row layout or the way rows are built, which
// makes every older file a miss.
const cacheMagic = "EMBUNW06"

// maxCachedRows bounds what a cache file may claim before it is read.
const maxCachedRows = maxSectionBytes / 2

// ErrCorrupt: a cache file failed its checks.
var ErrCorrupt = errors.New("corrupt unwind table cache file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewCache uses dir, creating it if needed, and keeps it under maxBytes
// (DefaultCacheBytes when 0).
func NewCache(dir string, maxBytes int64) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create unwind cache directory: %w", err)
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &Cache{dir: dir, maxBytes: maxBytes}, nil
}

// Evictions counts cache files removed to stay under the size bound.
func (c *Cache) Evictions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evictions
}

func (c *Cache) path(id string) (string, error) {
	if id == "" || len(id) > 128 || strings.Trim(id, "0123456789abcdefh") != "" {
		return "", fmt.Errorf("invalid file id %q", id)
	}
	return filepath.Join(c.dir, id+".unwind"), nil
}

// Load returns the cached table of a file, fs.ErrNotExist when there is
// none, or ErrCorrupt.
func (c *Cache) Load(id string) (*Table, error) {
	p, err := c.path(id)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	// The modification time records use, for eviction.
	now := time.Now()
	os.Chtimes(p, now, now)
	return decodeTable(raw)
}

// Store writes a table atomically: a crash leaves the old file or none.
func (c *Cache) Store(id string, t *Table) error {
	p, err := c.path(id)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("store unwind table: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(encodeTable(t)); err != nil {
		tmp.Close()
		return fmt.Errorf("store unwind table: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store unwind table: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("store unwind table: %w", err)
	}
	c.evict()
	return nil
}

// evict removes the least recently used files until the directory fits.
func (c *Cache) evict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type file struct {
		path string
		size int64
		used time.Time
	}
	var files []file
	var total int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".unwind") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, file{filepath.Join(c.dir, e.Name()), info.Size(), info.ModTime()})
		total += info.Size()
	}
	if total <= c.maxBytes {
		return
	}
	slices.SortFunc(files, func(a, b file) int { return a.used.Compare(b.used) })
	for _, f := range files {
		if total <= c.maxBytes {
			break
		}
		if os.Remove(f.path) == nil {
			total -= f.size
			c.evictions++
		}
	}
}

// Layout: magic, flags u32, source length u32, base u64, row count u32,
// source, rows (10 bytes each), CRC-32C of everything before it.
// rowBytes is a row's size in a cache file: PC, CFA offset, RBP offset, kind.
const rowBytes = 4 + 4 + 1 + 1

func encodeTable(t *Table) []byte {
	src := t.Source
	if len(src) > 255 {
		src = src[:255]
	}
	out := make([]byte, 0, 28+len(src)+rowBytes*len(t.Rows)+4)
	out = append(out, cacheMagic...)
	var flags uint32
	if t.FramePointers {
		flags |= 1
	}
	out = binary.LittleEndian.AppendUint32(out, flags)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(src)))
	out = binary.LittleEndian.AppendUint64(out, t.Base)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(t.Rows)))
	out = append(out, src...)
	for _, r := range t.Rows {
		out = binary.LittleEndian.AppendUint32(out, r.PC)
		out = binary.LittleEndian.AppendUint32(out, uint32(r.CFAOffset))
		out = append(out, byte(r.RBPOffset), r.Kind)
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func decodeTable(raw []byte) (*Table, error) {
	const header = 8 + 4 + 4 + 8 + 4
	if len(raw) < header+4 || string(raw[:8]) != cacheMagic {
		return nil, ErrCorrupt
	}
	body, sum := raw[:len(raw)-4], binary.LittleEndian.Uint32(raw[len(raw)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, ErrCorrupt
	}
	flags := binary.LittleEndian.Uint32(raw[8:])
	srcLen := uint64(binary.LittleEndian.Uint32(raw[12:]))
	base := binary.LittleEndian.Uint64(raw[16:])
	n := uint64(binary.LittleEndian.Uint32(raw[24:]))
	if flags&^1 != 0 || srcLen > 255 || n > maxCachedRows || uint64(len(body)) != header+srcLen+rowBytes*n {
		return nil, ErrCorrupt
	}
	t := &Table{Base: base, FramePointers: flags&1 != 0, Source: string(body[header : header+srcLen])}
	rows := body[header+srcLen:]
	if n > 0 {
		t.Rows = make([]Row, n)
	}
	for i := range t.Rows {
		b := rows[rowBytes*i:]
		t.Rows[i] = Row{
			PC:        binary.LittleEndian.Uint32(b),
			CFAOffset: int32(binary.LittleEndian.Uint32(b[4:])),
			RBPOffset: int8(b[8]),
			Kind:      b[9],
		}
		if i > 0 && t.Rows[i].PC <= t.Rows[i-1].PC {
			return nil, ErrCorrupt
		}
	}
	return t, nil
}
