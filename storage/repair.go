package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/google/pprof/profile"
	"google.golang.org/protobuf/proto"
)

// RepairReport says what Repair kept and what it left out, and what the
// new store holds.
type RepairReport struct {
	TablesKept    int
	TablesSkipped []string // file name and why
	// BlocksDropped are blocks that did not read in the new store: they
	// refer to dictionary entries, or have parts, in a table left out. What
	// a lost table costs thus depends on what it held: the oldest tables
	// hold the dictionary entries that newer blocks share.
	BlocksDropped int
	Check         CheckReport
}

// Repair copies what is readable of the store in from into a new store in
// to, and never changes from. Every table whose index and blocks read is
// kept, with the write-ahead and value logs; damaged tables are left out.
// The new MANIFEST lists the kept tables at level 0, where Badger lets
// tables overlap and tells versions apart by their timestamps, so the
// levels recorded in a missing or cut MANIFEST are not needed. A table a
// crash left unrecorded is kept too: its keys are older versions of keys
// that newer tables hold, or hours that retention removes again.
func Repair(ctx context.Context, from, to string, log *slog.Logger) (RepairReport, error) {
	var rep RepairReport
	if log == nil {
		log = slog.Default()
	}
	if entries, err := os.ReadDir(to); err == nil && len(entries) > 0 {
		return rep, fmt.Errorf("storage: repair into %s: it is not empty; give a new directory", to)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("storage: repair into %s: %w", to, err)
	}
	lock, err := lockDir(from, true)
	if err != nil {
		return rep, err
	}
	defer lock.release()
	src := filepath.Join(from, badgerDir)
	files, err := listBadgerFiles(src)
	if err != nil {
		return rep, fmt.Errorf("storage: read %s: %w (nothing to repair from)", src, err)
	}
	dst := filepath.Join(to, badgerDir)
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return rep, fmt.Errorf("storage: repair: %w", err)
	}
	var kept []uint64
	for id, path := range files.tables {
		if err := verifyTable(path, options.ZSTD, verifyBlocks); err != nil {
			rep.TablesSkipped = append(rep.TablesSkipped, fmt.Sprintf("%s (%v)", filepath.Base(path), err))
			continue
		}
		kept = append(kept, id)
	}
	slices.Sort(kept)
	slices.Sort(rep.TablesSkipped)
	rep.TablesKept = len(kept)
	toCopy := append(append([]string{}, files.vlogs...), files.mems...)
	for _, id := range kept {
		toCopy = append(toCopy, files.tables[id])
	}
	if _, err := os.Stat(filepath.Join(src, "KEYREGISTRY")); err == nil {
		toCopy = append(toCopy, filepath.Join(src, "KEYREGISTRY"))
	}
	for _, p := range toCopy {
		if err := copyFile(p, filepath.Join(dst, filepath.Base(p))); err != nil {
			return rep, fmt.Errorf("storage: repair: copy %s: %w", p, err)
		}
	}
	if err := writeManifest(filepath.Join(dst, badger.ManifestFilename), kept); err != nil {
		return rep, fmt.Errorf("storage: repair: %w", err)
	}
	if err := writeMarker(to); err != nil {
		return rep, err
	}
	// Open once to replay the write-ahead logs and move the tables out of
	// level 0, then check what the new store holds.
	s, err := Open(Options{Dir: to, Logger: log, maintenanceEvery: 1 << 62})
	if err != nil {
		return rep, fmt.Errorf("storage: repair: the new store in %s does not open: %w", to, err)
	}
	rep.BlocksDropped, err = s.dropUnreadable(ctx)
	if err == nil {
		s.lsmMu.Lock()
		err = s.db.Flatten(1)
		s.lsmMu.Unlock()
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rep, fmt.Errorf("storage: repair: compact the new store: %w", err)
	}
	rep.Check, err = Check(ctx, to, log)
	return rep, err
}

// dropUnreadable removes the blocks that do not read back whole.
func (s *Store) dropUnreadable(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	var bad []plannedBlock
	for level := range numLevels {
		for _, ref := range s.index[level] {
			b := plannedBlock{level, ref}
			recs, vals, err := s.mergePlanned(ctx, txn, []plannedBlock{b}, Selector{})
			if err == nil {
				from := time.Unix(0, ref.startNanos)
				var p *profile.Profile
				p, err = s.buildProfile(recs, vals, from, from.Add(max(levelDurations[level], time.Second)), true)
				// Records of label sets no longer in the dictionary are
				// skipped as not matching; a stored block is never empty.
				if err == nil && len(p.Sample) == 0 {
					err = errors.New("none of its samples has its labels in the dictionary")
				}
			}
			if err != nil {
				s.log.Warn("repair: dropping a block that does not read", slog.Int("level", level),
					slog.Time("start", time.Unix(0, ref.startNanos)), slog.Any("error", err))
				bad = append(bad, b)
			}
		}
	}
	if len(bad) == 0 {
		return 0, nil
	}
	return len(bad), s.deleteBlocks(bad)
}

// writeManifest writes a Badger MANIFEST that lists tables at level 0: the
// magic ("Bdgr", external version 0, Badger's version 8), then one record
// (length and CRC-32C, big-endian, of a ManifestChangeSet).
func writeManifest(path string, tables []uint64) error {
	set := pb.ManifestChangeSet{}
	for _, id := range tables {
		set.Changes = append(set.Changes, &pb.ManifestChange{Id: id, Op: pb.ManifestChange_CREATE,
			Level: 0, EncryptionAlgo: pb.EncryptionAlgo_aes, Compression: uint32(options.ZSTD)})
	}
	record, err := proto.Marshal(&set)
	if err != nil {
		return err
	}
	buf := []byte{'B', 'd', 'g', 'r', 0, 0, 0, 8}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(record)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(record, y.CastagnoliCrcTable))
	buf = append(buf, record...)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
