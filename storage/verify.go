package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ErrDamaged is returned (wrapped) by Open and Check when a file of the
// store is missing or damaged in a way Badger would not report but answer
// by dropping data: a missing or cut MANIFEST, a missing or cut table.
var ErrDamaged = errors.New("the store is damaged")

// recoveryHint ends every refusal for damage: what to do, and that nothing
// was changed.
const recoveryHint = "nothing was changed; `ember store check --data-dir %s` says more, and " +
	"`ember store repair --data-dir %s --to NEW-DIR` copies what reads into a new store; or restore a " +
	"backup (docs/storage.md, \"Recovering a damaged store\")"

func damaged(dataDir, what string, args ...any) error {
	return fmt.Errorf("storage: %s: %w: %s; "+recoveryHint, dataDir, ErrDamaged, fmt.Sprintf(what, args...), dataDir, dataDir)
}

// badgerFiles lists what a Badger directory holds, by kind.
type badgerFiles struct {
	manifest bool
	tables   map[uint64]string // table id -> path
	vlogs    []string
	mems     []string
}

func listBadgerFiles(dir string) (badgerFiles, error) {
	files := badgerFiles{tables: map[uint64]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return files, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == badger.ManifestFilename:
			files.manifest = true
		case strings.HasSuffix(name, ".sst"):
			var id uint64
			if _, err := fmt.Sscanf(name, "%d.sst", &id); err == nil {
				files.tables[id] = filepath.Join(dir, name)
			}
		case strings.HasSuffix(name, ".vlog"):
			files.vlogs = append(files.vlogs, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".mem"):
			files.mems = append(files.mems, filepath.Join(dir, name))
		}
	}
	return files, nil
}

// verifyLevel says how much of each table verifyBadgerFiles reads.
type verifyLevel int

const (
	verifyIndexes verifyLevel = iota // each table's footer and index: cheap, at every Open
	verifyBlocks                     // every block's checksum too: what `ember store check` does
)

// verifyBadgerFiles checks, without changing anything, what Badger would
// otherwise answer by dropping data or crashing: a MANIFEST missing while
// tables remain (Badger starts empty and deletes them), a MANIFEST whose
// last record is cut (Badger drops the tables it lists), a table listed but
// missing, and a table whose index is cut or damaged (Badger panics in a
// goroutine of its own, or skips a table whose checksum fails). Tables on
// disk that the MANIFEST does not list are what a crash between writing a
// table and recording it leaves; Badger removes them, and their data is
// still in the write-ahead log.
func verifyBadgerFiles(dataDir string, level verifyLevel, log *slog.Logger) (badger.Manifest, error) {
	dir := filepath.Join(dataDir, badgerDir)
	files, err := listBadgerFiles(dir)
	if err != nil {
		return badger.Manifest{}, fmt.Errorf("storage: read %s: %w", dir, err)
	}
	if !files.manifest {
		if n := len(files.tables) + len(files.vlogs) + len(files.mems); n > 0 {
			return badger.Manifest{}, damaged(dataDir, "%s/%s is missing while %d tables (.sst), %d value logs (.vlog) "+
				"and %d write-ahead logs (.mem) remain; Badger would start an empty database and delete the tables",
				badgerDir, badger.ManifestFilename, len(files.tables), len(files.vlogs), len(files.mems))
		}
		return badger.Manifest{}, nil // a store Badger has not opened yet
	}
	m, err := replayManifest(dataDir, filepath.Join(dir, badger.ManifestFilename), log)
	if err != nil {
		return m, err
	}
	ids := make([]uint64, 0, len(m.Tables))
	for id := range m.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		path, ok := files.tables[id]
		if !ok {
			return m, damaged(dataDir, "table %s/%s, listed in %s/%s, is missing", badgerDir, tableName(id),
				badgerDir, badger.ManifestFilename)
		}
		if err := verifyTable(path, m.Tables[id].Compression, level); err != nil {
			return m, damaged(dataDir, "table %s/%s is damaged (%v); Badger would crash on it or skip its data",
				badgerDir, filepath.Base(path), err)
		}
	}
	return m, nil
}

func tableName(id uint64) string { return fmt.Sprintf("%06d.sst", id) }

// replayManifest reads the MANIFEST as Badger will, and refuses one whose
// last record is cut: Badger truncates it there and drops the tables the
// lost records created. A MANIFEST record is written with one write call
// and synced, so a process crash leaves no partial record.
func replayManifest(dataDir, path string, log *slog.Logger) (badger.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return badger.Manifest{}, fmt.Errorf("storage: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return badger.Manifest{}, fmt.Errorf("storage: stat %s: %w", path, err)
	}
	opts := badger.DefaultOptions("").WithLogger(badgerLogger{log})
	m, whole, err := badger.ReplayManifestFile(f, 0, opts)
	if err != nil {
		return m, damaged(dataDir, "%s/%s does not read (%v)", badgerDir, badger.ManifestFilename, err)
	}
	if whole != st.Size() {
		return m, damaged(dataDir, "%s/%s is cut: its last record ends past the file's end (%d of %d bytes read "+
			"whole); Badger would drop the tables that record lists", badgerDir, badger.ManifestFilename, whole, st.Size())
	}
	return m, nil
}

// verifyTable reads a table's footer and index as Badger's table.OpenTable
// does (checksum length, checksum, index length, index; from the end),
// without trusting any length: a cut file makes Badger slice out of range.
// At verifyBlocks it also checks every block's checksum.
func verifyTable(path string, compression options.CompressionType, level verifyLevel) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	readAt := func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > size {
			return nil, fmt.Errorf("the file is cut or overwritten: %d bytes at offset %d would lie outside its %d bytes", n, off, size)
		}
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b, nil
	}
	pos := size - 4
	b, err := readAt(pos, 4)
	if err != nil {
		return fmt.Errorf("checksum length: %w", err)
	}
	checksumLen := int64(y.BytesToU32(b))
	pos -= checksumLen
	if b, err = readAt(pos, checksumLen); err != nil {
		return fmt.Errorf("index checksum: %w", err)
	}
	var sum pb.Checksum
	if err := proto.Unmarshal(b, &sum); err != nil {
		return fmt.Errorf("index checksum: %w", err)
	}
	pos -= 4
	if b, err = readAt(pos, 4); err != nil {
		return fmt.Errorf("index length: %w", err)
	}
	indexLen := int64(y.BytesToU32(b))
	pos -= indexLen
	index, err := readAt(pos, indexLen)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if err := y.VerifyChecksum(index, &sum); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ti := fb.GetRootAsTableIndex(index, 0)
	if ti.OffsetsLength() == 0 {
		return errors.New("index lists no blocks")
	}
	var bo fb.BlockOffset
	for i := range ti.OffsetsLength() {
		if !ti.Offsets(&bo, i) {
			return fmt.Errorf("index entry %d does not read", i)
		}
		off, n := int64(bo.Offset()), int64(bo.Len())
		if off+n > pos {
			return fmt.Errorf("block %d (%d bytes at %d) runs into the index at %d", i, n, off, pos)
		}
		if level < verifyBlocks {
			continue
		}
		data, err := readAt(off, n)
		if err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
		if err := verifyBlock(data, compression); err != nil {
			return fmt.Errorf("block %d at offset %d: %w", i, off, err)
		}
	}
	return nil
}

// verifyBlock checks a block's checksum, which covers its uncompressed
// entries and entry index; the checksum and its length end the block.
func verifyBlock(data []byte, compression options.CompressionType) error {
	var err error
	switch compression {
	case options.None:
	case options.ZSTD:
		if data, err = y.ZSTDDecompress(nil, data); err != nil {
			return fmt.Errorf("decompress: %w", err)
		}
	default:
		return nil // Ember writes zstd; other kinds are not checked here
	}
	if len(data) < 4 {
		return errors.New("shorter than its checksum length")
	}
	end := len(data) - 4
	checksumLen := int(y.BytesToU32(data[end:]))
	if checksumLen > end {
		return errors.New("checksum length past the block's start")
	}
	var sum pb.Checksum
	if err := proto.Unmarshal(data[end-checksumLen:end], &sum); err != nil {
		return fmt.Errorf("checksum: %w", err)
	}
	return y.VerifyChecksum(data[:end-checksumLen], &sum)
}

// fileBytes is the space allocated to the files at paths.
func fileBytes(paths []string) int64 {
	var total int64
	for _, p := range paths {
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			total += st.Blocks * 512
		}
	}
	return total
}
