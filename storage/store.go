package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configures a Store. Zero fields take the defaults.
type Options struct {
	Dir              string        // data directory; created if missing
	Retention        time.Duration // default 168h; data older goes
	MaxDiskBytes     int64         // default 2 GiB; past it, the oldest data goes
	MinFreeDiskBytes int64         // default 256 MiB: stop writing when the filesystem has less free
	Logger           *slog.Logger  // default slog.Default()
	// DictionaryCacheBytes bounds the memory that holds dictionary entries
	// (stacks, locations, functions, label sets) for deduplicating writes
	// and decoding queries; the dictionary itself stays on disk. Zero or
	// less takes the default, 32 MiB.
	DictionaryCacheBytes int64
	// PathCacheBytes bounds the memory that keeps stacks named across
	// flame graph queries, so that the live hour is not read out of the
	// dictionary again by every request. Zero takes the default, 32 MiB;
	// less than zero turns the cache off.
	PathCacheBytes int64

	// For tests.
	now              func() time.Time                // the clock retention runs on
	freeBytes        func(dir string) (int64, error) // free space of the filesystem holding dir
	maintenanceEvery time.Duration                   // default 1 minute
	noRollups        bool                            // queries read level 0 only
	afterMaintenance func()                          // called after each maintenance round
	diskBytes        func(dir string) (int64, error) // the store's size on disk
}

const (
	defaultRetention        = 168 * time.Hour
	defaultMaxDiskBytes     = 2 << 30
	defaultMinFreeDiskBytes = 256 << 20
	defaultMaintenanceEvery = time.Minute

	markerFile    = "EMBER-STORE"
	formatVersion = 1
	badgerDir     = "badger"
)

// ErrDiskFull is returned (wrapped) by Append when the filesystem holding the
// store has less free space than Options.MinFreeDiskBytes. Nothing was
// written; writes resume by themselves once space returns.
var ErrDiskFull = errors.New("storage: disk full")

var errClosed = errors.New("storage: store is closed")

// Store is a profile history on disk. Its methods are safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger
	db   *badger.DB
	lock *dirLock // held from Open to Close

	// mu guards the dictionary, the index and the roll-up state. Append
	// and maintenance take it for writing, queries for reading.
	mu            sync.RWMutex
	dict          *dictionary
	paths         *pathCache // named stacks, shared by flame graph queries
	index         index
	rolledThrough [numLevels]int64 // per level: every bucket ending at or before this is rolled up
	// collectedBefore is the oldest stored hour at the last dictionary
	// collection.
	collectedBefore uint32
	newestRaw       int64 // start of the newest interval
	closed          bool  // set by Close; later calls fail with errClosed

	samplesWritten, intervalsWritten, writeErrors, diskFullRejections atomic.Uint64
	diskBytes                                                         atomic.Int64
	diskFull                                                          atomic.Bool
	dictStats                                                         atomic.Pointer[DictionaryStats] // published by publishDictStats

	// lsmMu serialises what stops Badger's compactions for a while
	// (Flatten, DropPrefix): two at once would restart them twice.
	lsmMu sync.Mutex
	// compactNow wakes compactLoop; Append signals it, without waiting.
	compactNow chan struct{}

	stop      context.CancelFunc
	done      chan struct{}
	compacted chan struct{} // closed when compactLoop returns
	closeOnce sync.Once
	closeErr  error
}

// numLevelZeroTables is how many tables level 0 holds before it is
// compacted.
const numLevelZeroTables = 2

// Stats are the store's counters since Open, and its extent.
type Stats struct {
	DiskBytes                                                         int64
	SamplesWritten, IntervalsWritten, WriteErrors, DiskFullRejections uint64
	OldestData, NewestData                                            time.Time
	Dictionary                                                        DictionaryStats
	Paths                                                             PathCacheStats
}

// Open opens or creates a store. A directory that is not an Ember store
// (non-empty without Ember's marker file), a store of an unknown format
// version, or a damaged store (wrapping ErrDamaged) is refused with an
// error that says what was found and what to do; it is never wiped. So is
// a store another process holds, and one on a disk too full for Badger to
// open it (wrapping ErrDiskFull: retry once there is room). Open starts
// the store's maintenance goroutine (retention, max-disk, value-log GC),
// stopped by Close.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: no data directory given")
	}
	if opts.Retention == 0 {
		opts.Retention = defaultRetention
	}
	if opts.MaxDiskBytes == 0 {
		opts.MaxDiskBytes = defaultMaxDiskBytes
	}
	if opts.MinFreeDiskBytes == 0 {
		opts.MinFreeDiskBytes = defaultMinFreeDiskBytes
	}
	if opts.Retention < 0 || opts.MaxDiskBytes < 0 || opts.MinFreeDiskBytes < 0 {
		return nil, fmt.Errorf("storage: retention, max disk and min free disk must not be negative")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.freeBytes == nil {
		opts.freeBytes = filesystemFreeBytes
	}
	if opts.diskBytes == nil {
		opts.diskBytes = storeBytes
	}
	if opts.maintenanceEvery == 0 {
		opts.maintenanceEvery = defaultMaintenanceEvery
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}
	lock, err := lockDir(opts.Dir, false)
	if err != nil {
		return nil, err
	}
	s, err := open(opts, lock)
	if err != nil {
		lock.release()
		return nil, err
	}
	if n, err := opts.diskBytes(opts.Dir); err == nil {
		s.diskBytes.Store(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	s.compactNow, s.compacted = make(chan struct{}, 1), make(chan struct{})
	go s.maintain(ctx)
	go s.compactLoop(ctx)
	s.log.Info("store opened", slog.String("dir", opts.Dir),
		slog.Int("blocks", len(s.index[0])+len(s.index[1])+len(s.index[2])+len(s.index[3])),
		slog.Int("stacks", s.dict.stacks.len()), slog.Int("label_sets", s.dict.labelSets.len()))
	return s, nil
}

// open checks the locked directory and opens Badger in it: nothing that
// Badger would answer by dropping data or crashing reaches badger.Open.
func open(opts Options, lock *dirLock) (*Store, error) {
	if err := prepareDir(opts.Dir); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, log: opts.Logger.With(slog.String("component", "storage")), dict: newDictionary(), lock: lock}
	if _, err := verifyBadgerFiles(opts.Dir, verifyIndexes, s.log); err != nil {
		return nil, err
	}
	if err := checkRoomToOpen(opts); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(filepath.Join(opts.Dir, badgerDir), s.log))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s/%s is held by another process: stop it (nothing was changed)",
				errInUse, opts.Dir, badgerDir)
		}
		return nil, fmt.Errorf("storage: open %s: the Badger database in it does not open (%w); "+
			"it may be corrupt: run `ember store check --data-dir %s`, and see docs/storage.md "+
			"(it was not deleted)", opts.Dir, err, opts.Dir)
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: open %s: %w; the store may be corrupt: run `ember store check "+
			"--data-dir %s`, and see docs/storage.md (it was not deleted)", opts.Dir, err, opts.Dir)
	}
	s.publishDictStats()
	return s, nil
}

// checkRoomToOpen refuses to open Badger without the space it writes at
// once: it flushes the write-ahead logs it replays and starts a new one.
func checkRoomToOpen(opts Options) error {
	free, err := opts.freeBytes(opts.Dir)
	if err != nil {
		return fmt.Errorf("storage: check free space: %w", err)
	}
	mems, _ := filepath.Glob(filepath.Join(opts.Dir, badgerDir, "*.mem"))
	need := badgerHeadroomBytes + fileBytes(mems)
	if free < need {
		return fmt.Errorf("storage: open %s: %w: %d bytes free, and opening needs %d (to replay and flush "+
			"the write-ahead log); free space on that filesystem, the store opens once it has room "+
			"(nothing was changed)", opts.Dir, ErrDiskFull, free, need)
	}
	return nil
}

// prepareDir creates the directory and marker for a new store, or checks
// an existing one, without changing anything in a directory it refuses.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("storage: read data directory: %w", err)
	}
	if unfinishedNewStore(dir, entries) {
		// The Badger directory comes before the marker, so that a marker
		// without it means the database was removed.
		if err := os.MkdirAll(filepath.Join(dir, badgerDir), 0o750); err != nil {
			return fmt.Errorf("storage: create %s: %w", badgerDir, err)
		}
		return writeMarker(dir)
	}
	return checkMarker(dir, entries)
}

// checkMarker checks the marker of an existing store, and that its Badger
// directory is there.
func checkMarker(dir string, entries []fs.DirEntry) error {
	data, err := os.ReadFile(filepath.Join(dir, markerFile))
	if errors.Is(err, fs.ErrNotExist) {
		names := make([]string, 0, 3)
		for _, e := range entries[:min(3, len(entries))] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("storage: %s is not an Ember store: it holds %d entries (%s) and no %s file; "+
			"give an empty or new directory, or move these files away (nothing was changed)",
			dir, len(entries), strings.Join(names, ", "), markerFile)
	}
	if err != nil {
		return fmt.Errorf("storage: read %s: %w", filepath.Join(dir, markerFile), err)
	}
	version, ok := parseMarker(data)
	if !ok {
		return fmt.Errorf("storage: %s: %s does not look like an Ember store marker (%q); the store may be "+
			"corrupt: move the directory away and start with an empty one (nothing was changed)",
			dir, markerFile, truncate(string(data), 40))
	}
	if version != formatVersion {
		return fmt.Errorf("storage: %s holds an Ember store of format version %d; this build reads version %d: "+
			"run a matching Ember, or move the directory away and start with an empty one (nothing was changed)",
			dir, version, formatVersion)
	}
	if st, err := os.Stat(filepath.Join(dir, badgerDir)); err != nil || !st.IsDir() {
		return damaged(dir, "it has its %s marker but no %s/ directory: the database was removed or moved; "+
			"put it back", markerFile, badgerDir)
	}
	return nil
}

// unfinishedNewStore reports a directory that is empty, or holds only the
// empty Badger directory that creating a store makes before its marker.
func unfinishedNewStore(dir string, entries []fs.DirEntry) bool {
	switch {
	case len(entries) == 0:
		return true
	case len(entries) == 1 && entries[0].Name() == badgerDir && entries[0].IsDir():
		inside, err := os.ReadDir(filepath.Join(dir, badgerDir))
		return err == nil && len(inside) == 0
	}
	return false
}

const markerPrefix = "ember store format "

func writeMarker(dir string) error {
	tmp := filepath.Join(dir, markerFile+".tmp")
	content := fmt.Sprintf("%s%d\nThis directory holds Ember's profile history (a Badger database in %s/).\n",
		markerPrefix, formatVersion, badgerDir)
	if err := os.WriteFile(tmp, []byte(content), 0o640); err != nil {
		return fmt.Errorf("storage: write store marker: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, markerFile)); err != nil {
		return fmt.Errorf("storage: write store marker: %w", err)
	}
	return nil
}

func parseMarker(data []byte) (int, bool) {
	line, _, _ := strings.Cut(string(data), "\n")
	rest, ok := strings.CutPrefix(line, markerPrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(rest)
	return v, err == nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// badgerOptions sizes Badger for a write rate of a few KiB every 10 s:
// small memtables, caches and value-log files keep the RSS small (see
// KNOWN-TRAPS.md: memory follows write bursts). Blocks are small values
// kept in the LSM tree, where Badger compresses them with zstd.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithMemTableSize(memTableBytes).
		WithNumMemtables(2).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(8).
		// A table builder holds every block of its table uncompressed
		// until it is written, and the cap counts compressed bytes: a
		// 4 MiB table of blocks zstd shrinks several times held 16-32 MiB
		// of the heap during each compaction.
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(16 << 20).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(512 << 10). // block parts (<= 64 KiB) stay in the LSM tree, compressed
		WithBlockSize(32 << 10).
		WithBlockCacheSize(2 << 20).
		WithIndexCacheSize(1 << 20).
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(3).
		// Badger's compactors wake every 50 ms each to look for work: 0.5%
		// of a core on this VM with nothing to do, half the daemon's budget.
		// compactLoop compacts when an append may have made work instead.
		WithNumCompactors(0).
		WithNumGoroutines(2).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	// Every level's tables the base size: doubling per level, the
	// deepest level's builders held eight times as much.
	opts.TableSizeMultiplier = 1
	return opts
}

// load checks the format key, counts the dictionary entries (which stay
// on disk), reads the block index, and brings the dictionary's indexes up
// to date with what an older Ember wrote.
func (s *Store) load() error {
	budget := s.opts.DictionaryCacheBytes
	if budget <= 0 {
		budget = defaultDictionaryCacheBytes
	}
	s.dict.open(s.db, budget)
	switch {
	case s.opts.PathCacheBytes == 0:
		s.paths = newPathCache(defaultPathCacheBytes)
	case s.opts.PathCacheBytes > 0:
		s.paths = newPathCache(s.opts.PathCacheBytes)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(metaFormatKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if err := txn.Set(metaFormatKey, []byte(strconv.Itoa(formatVersion))); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if string(v) != strconv.Itoa(formatVersion) {
				return fmt.Errorf("database format version %q, want %d", v, formatVersion)
			}
		}

		if err := s.dict.scanDictionary(txn); err != nil {
			return err
		}

		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixBlock}, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			level, start, part, ok := parseBlockKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("bad block key %x", it.Item().Key())
			}
			ref, _ := s.index.find(level, start)
			ref.startNanos = start
			ref.parts = max(ref.parts, part+1)
			ref.bytes += it.Item().ValueSize()
			s.index.put(level, ref)
		}
		if n := len(s.index[0]); n > 0 {
			s.newestRaw = s.index[0][n-1].startNanos
		}
		for level := 1; level < numLevels; level++ {
			if n := len(s.index[level]); n > 0 {
				s.rolledThrough[level] = s.index[level][n-1].startNanos + int64(levelDurations[level])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.buildHashIndex(); err != nil {
		return fmt.Errorf("index the dictionary: %w", err)
	}
	if err := s.recordUsedIDs(); err != nil {
		return fmt.Errorf("record the dictionary ids that blocks use: %w", err)
	}
	return nil
}

// Stats returns the store's counters and extent.
func (s *Store) Stats() Stats {
	st := Stats{
		DiskBytes:          s.diskBytes.Load(),
		SamplesWritten:     s.samplesWritten.Load(),
		IntervalsWritten:   s.intervalsWritten.Load(),
		WriteErrors:        s.writeErrors.Load(),
		DiskFullRejections: s.diskFullRejections.Load(),
	}
	s.mu.RLock()
	st.Dictionary = s.dict.stats()
	st.Paths = s.paths.stats()
	defer s.mu.RUnlock()
	oldest, newest := int64(0), int64(0)
	for level := range numLevels {
		refs := s.index[level]
		if len(refs) == 0 {
			continue
		}
		if o := refs[0].startNanos; oldest == 0 || o < oldest {
			oldest = o
		}
		if n := refs[len(refs)-1].startNanos; n > newest {
			newest = n
		}
	}
	if oldest != 0 {
		st.OldestData = time.Unix(0, oldest)
		st.NewestData = time.Unix(0, newest)
	}
	return st
}

// Close stops maintenance, flushes and closes the store. Calls after the
// first return its result. On a disk too full for Badger to flush its
// memtable (which would die with SIGBUS), Close leaves Badger open and
// returns a wrapped ErrDiskFull: every acknowledged Append is already in
// the write-ahead log, which the next Open replays as after a crash. The
// process is expected to exit then.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		<-s.compacted
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		defer s.lock.release()
		if free, err := s.opts.freeBytes(s.opts.Dir); err == nil && free < badgerHeadroomBytes {
			s.closeErr = fmt.Errorf("storage: close: %w: %d bytes free, less than the %d a flush needs: "+
				"left the write-ahead log to be replayed at the next start (nothing acknowledged is lost)",
				ErrDiskFull, free, badgerHeadroomBytes)
			s.log.Warn("disk too full to flush the store at close: its write-ahead log is replayed at the next start",
				slog.Int64("free_bytes", free), slog.Int64("needed_bytes", badgerHeadroomBytes))
			return
		}
		s.closeErr = s.db.Close()
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("storage: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// badgerLogger sends Badger's logs to slog; its info lines are debug here.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) logf(level slog.Level, f string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, "badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}

func (l badgerLogger) Errorf(f string, a ...any) { l.logf(slog.LevelError, f, a) }
func (l badgerLogger) Warningf(f string, a ...any) {
	level := slog.LevelWarn
	// Badger rates its caches every minute and at close; Ember keeps the
	// block cache small on purpose (badgerOptions): a tuning hint, not a
	// warning an operator can act on.
	if strings.Contains(f, "might be too small. Metrics") || strings.HasPrefix(f, "Cache life expectancy") {
		level = slog.LevelDebug
	}
	l.logf(level, f, a)
}
func (l badgerLogger) Infof(f string, a ...any)  { l.logf(slog.LevelDebug, f, a) }
func (l badgerLogger) Debugf(f string, a ...any) { l.logf(slog.LevelDebug, f, a) }
