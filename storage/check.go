package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

// CheckReport is what Check found in a store.
type CheckReport struct {
	Tables, ValueLogs, WriteAheadLogs int
	// WriteAheadReplayed is set when the store was not closed cleanly: its
	// write-ahead logs were replayed in a scratch copy, as the next Open
	// replays them in place.
	WriteAheadReplayed bool
	BlocksPerLevel     [numLevels]int
	Intervals          int   // raw (level 0) blocks
	Samples            int64 // samples in the whole history
	Stacks, LabelSets  int
	Oldest, Newest     time.Time
	DiskBytes          int64
}

// Check reads a store without changing anything: the marker, the MANIFEST,
// every table's index and block checksums, then opens Badger read-only and
// loads the dictionary and the block index, and reads the whole history.
// A store that Open would refuse, or that does not read, is an error that
// says what is damaged. A store held by a running daemon is refused: check
// a copy, or stop the daemon.
func Check(ctx context.Context, dir string, log *slog.Logger) (CheckReport, error) {
	var rep CheckReport
	if log == nil {
		log = slog.Default()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return rep, fmt.Errorf("storage: read %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return rep, fmt.Errorf("storage: %s is empty: there is no store to check", dir)
	}
	lock, err := lockDir(dir, true)
	if err != nil {
		return rep, err
	}
	defer lock.release()
	if err := checkMarker(dir, entries); err != nil {
		return rep, err
	}
	files, err := listBadgerFiles(filepath.Join(dir, badgerDir))
	if err != nil {
		return rep, fmt.Errorf("storage: read %s: %w", filepath.Join(dir, badgerDir), err)
	}
	rep.ValueLogs, rep.WriteAheadLogs = len(files.vlogs), len(files.mems)
	rep.DiskBytes, _ = storeBytes(dir)
	m, err := verifyBadgerFiles(dir, verifyBlocks, log)
	if err != nil {
		return rep, err
	}
	rep.Tables = len(m.Tables)
	if !files.manifest {
		return rep, nil // created, never written
	}
	db, replayed, closeDB, err := openForCheck(dir, log)
	if err != nil {
		return rep, damaged(dir, "Badger does not open it read-only (%v)", err)
	}
	defer closeDB()
	rep.WriteAheadReplayed = replayed
	s := &Store{opts: Options{Dir: dir}, log: log, db: db, dict: newDictionary()}
	if err := s.load(); err != nil {
		return rep, damaged(dir, "the dictionary or the block index does not load (%v)", err)
	}
	for level := range numLevels {
		rep.BlocksPerLevel[level] = len(s.index[level])
	}
	rep.Intervals = len(s.index[0])
	rep.Stacks, rep.LabelSets = s.dict.stacks.len(), s.dict.labelSets.len()
	st := s.Stats()
	rep.Oldest, rep.Newest = st.OldestData, st.NewestData
	if rep.Oldest.IsZero() {
		return rep, nil
	}
	// Every block's parts, through the same path as a query.
	p, err := s.Query(ctx, ProfileQuery{From: rep.Oldest, To: rep.Newest.Add(levelDurations[numLevels-1])})
	if err != nil {
		return rep, damaged(dir, "the history does not read (%v)", err)
	}
	// The samples/count value, which a store of other types may lack.
	if i := slices.IndexFunc(p.SampleType, func(vt *profile.ValueType) bool { return schema.Of(vt) == schema.Samples }); i >= 0 {
		for _, sample := range p.Sample {
			rep.Samples += sample.Value[i]
		}
	}
	return rep, nil
}

// openForCheck opens the Badger database read-only. One that was not closed
// cleanly has write-ahead logs that Badger must truncate, which read-only
// mode refuses: those open from a scratch copy, where they are replayed.
func openForCheck(dir string, log *slog.Logger) (db *badger.DB, replayed bool, closeDB func(), err error) {
	bdir := filepath.Join(dir, badgerDir)
	db, err = badger.Open(badgerOptions(bdir, log).WithReadOnly(true))
	if err == nil {
		return db, false, func() { db.Close() }, nil
	}
	// Badger wraps it in text on the way up.
	if !errors.Is(err, badger.ErrTruncateNeeded) && !strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()) {
		return nil, false, nil, err
	}
	scratch, err := os.MkdirTemp("", "ember-store-check-")
	if err != nil {
		return nil, false, nil, err
	}
	if err := copyFiles(bdir, scratch); err != nil {
		os.RemoveAll(scratch)
		return nil, false, nil, fmt.Errorf("copy to %s to replay the write-ahead log: %w", scratch, err)
	}
	db, err = badger.Open(badgerOptions(scratch, log))
	if err != nil {
		os.RemoveAll(scratch)
		return nil, false, nil, err
	}
	return db, true, func() { db.Close(); os.RemoveAll(scratch) }, nil
}

// copyFiles copies the regular files of from (not Badger's LOCK) into to.
func copyFiles(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
