package symbolizer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

// Debug files are looked for as root at paths that traced processes partly
// choose, so they are opened in two steps: O_PATH first, which resolves
// the path without opening the file (no device driver's open, no FIFO),
// then, once fstat says it is a regular file, the same inode for reading
// through /proc/self/fd. A device node or FIFO planted where a debug file
// is looked for is never opened.

// errNotDebugFile: the candidate exists but is not something to read.
var errNotDebugFile = errors.New("not a regular file")

// openDebugCandidate opens candidate c for reading: inside its debug root,
// or inside processRoot when c.root is "". self is the object's stat.
func openDebugCandidate(c debugCandidate, processRoot *os.File, self *unix.Stat_t) (*os.File, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS}
	var dirFd int
	name := c.path
	switch {
	case c.root == "":
		dirFd = int(processRoot.Fd())
		how.Resolve |= unix.RESOLVE_IN_ROOT
	case c.trusted:
		dirFd = unix.AT_FDCWD
		name = filepath.Join(c.root, c.path)
	default:
		root, err := unix.Open(c.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: c.root, Err: err}
		}
		defer unix.Close(root)
		dirFd = root
		how.Resolve |= unix.RESOLVE_IN_ROOT
	}
	pathFd, err := unix.Openat2(dirFd, name, &how)
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: name, Err: err}
	}
	defer unix.Close(pathFd)
	var st unix.Stat_t
	if err := unix.Fstat(pathFd, &st); err != nil {
		return nil, err
	}
	if err := checkDebugFileStat(&st, self, c.root == ""); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathFd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: name, Err: err}
	}
	var opened unix.Stat_t
	if err := unix.Fstat(fd, &opened); err != nil || opened.Dev != st.Dev || opened.Ino != st.Ino || opened.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: changed while opened", name)
	}
	display := name
	if c.root == "" {
		display = "(process root)" + c.path
	}
	return os.NewFile(uintptr(fd), display), nil
}

// checkDebugFileStat accepts a regular file of a plausible size that is
// not the object itself. A file found in the process's root must also
// have the object's owner: the process may have planted a link there to
// a host file it cannot read (it takes root to make one for another
// owner's file, and root there may read it anyway).
func checkDebugFileStat(st, self *unix.Stat_t, inProcessRoot bool) error {
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return errNotDebugFile
	case st.Size <= 0 || st.Size > maxDebugFileBytes:
		return fmt.Errorf("%d bytes: not a debug file", st.Size)
	case self != nil && st.Dev == self.Dev && st.Ino == self.Ino:
		return errors.New("the object itself")
	case inProcessRoot && (self == nil || st.Uid != self.Uid):
		return fmt.Errorf("owned by uid %d, not by the object's owner", st.Uid)
	}
	return nil
}

// openProcessRoot opens the root directory of a live process as O_PATH,
// so that paths the process sees resolve there (with RESOLVE_IN_ROOT) as
// they do for it. The start time in procRoot/PID/stat must be the
// snapshot's, read through the same directory handle after opening root,
// so a reused PID is not taken for the process sampled.
func openProcessRoot(procRoot string, proc *model.Process) (*os.File, error) {
	if proc == nil || proc.Exited || proc.SnapshotErr != nil {
		return nil, errors.New("the process is gone")
	}
	dirPath := filepath.Join(procRoot, strconv.FormatUint(uint64(proc.PID), 10))
	dir, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dirPath, Err: err}
	}
	defer unix.Close(dir)
	root, err := unix.Openat(dir, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dirPath + "/root", Err: err}
	}
	if proc.StartTicks != 0 {
		if ticks, err := startTicksAt(dir); err != nil || ticks != proc.StartTicks {
			unix.Close(root)
			return nil, fmt.Errorf("process %d is not the one sampled (start %d, want %d): %v", proc.PID, ticks, proc.StartTicks, err)
		}
	}
	return os.NewFile(uintptr(root), dirPath+"/root"), nil
}

// startTicksAt reads field 22 (start time) of the stat file in a /proc/PID
// directory; comm may hold spaces and parentheses, so fields are counted
// after the last ')'.
func startTicksAt(dir int) (uint64, error) {
	fd, err := unix.Openat(dir, "stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return 0, err
	}
	raw := buf[:max(n, 0)]
	closing := bytes.LastIndexByte(raw, ')')
	if closing < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(raw[closing+1:]))
	if len(fields) < 22-2 {
		return 0, errors.New("malformed stat: too few fields")
	}
	return strconv.ParseUint(fields[22-3], 10, 64)
}
