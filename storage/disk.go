package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// badgerHeadroomBytes is the free space Badger needs to flush a memtable
// (at most memTableBytes) into a table and start a new write-ahead log.
// Badger writes both through mmapped files: on a full disk it dies with
// SIGBUS instead of returning an error, so the store checks first.
const (
	memTableBytes       = 4 << 20
	badgerHeadroomBytes = 4 * memTableBytes
)

// filesystemFreeBytes is the space an unprivileged writer may still use on
// the filesystem holding dir.
func filesystemFreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// storeBytes is what --max-disk counts: the store's marker and its Badger
// directory, as du reports them. Whatever else shares the data directory
// (the collector's unwind cache) is not the store's, and the store cannot
// shrink it by removing history.
func storeBytes(dir string) (int64, error) {
	total, err := directoryBytes(filepath.Join(dir, badgerDir))
	return total + fileBytes([]string{filepath.Join(dir, markerFile)}), err
}

// directoryBytes is what du reports for dir: allocated blocks, so sparse
// preallocated files count for what they hold.
func directoryBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // Badger removed it meanwhile
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return err
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// dirLock is an advisory lock on the data directory, held while a store is
// open, so that a second daemon (or a check) is told the store is in use
// before anything reads files the holder is changing.
type dirLock struct{ f *os.File }

// errInUse is wrapped by Open when another process holds the store.
var errInUse = errors.New("storage: store in use")

func lockDir(dir string, shared bool) (*dirLock, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by another process (another ember daemon, or `ember store "+
				"check`): stop it, or give this one another data directory (nothing was changed)", errInUse, dir)
		}
		return nil, fmt.Errorf("storage: lock %s: %w", dir, err)
	}
	return &dirLock{f}, nil
}

func (l *dirLock) release() {
	if l != nil {
		l.f.Close() // closing the last descriptor drops the flock
	}
}
