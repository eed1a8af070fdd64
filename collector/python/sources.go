package python

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// QualnameFallback says why a frame of CPython before 3.11 kept co_name
// instead of a qualified name derived from its source.
type QualnameFallback uint8

const (
	FallbackNone       QualnameFallback = iota // derived (or 3.11+: the code object's own)
	FallbackNoPath                             // co_filename is no path ("<frozen ...>", "<string>"), or relative to an unknown directory
	FallbackUnreadable                         // missing, not a regular file, too large, or unreadable
	FallbackExited                             // the process left, and its files are not the host's
	FallbackChanged                            // modified since the process started
	FallbackNotUTF8
	FallbackUnparsed  // the scope finder could not follow the file
	FallbackNoMatch   // no def, class, lambda or comprehension of that name starts at co_firstlineno
	FallbackAmbiguous // two code objects could start there with different scopes
	FallbackReasons
)

var fallbackNames = [FallbackReasons]string{
	"", "no_path", "unreadable", "exited", "changed", "not_utf8", "unparsed", "no_match", "ambiguous",
}

func (r QualnameFallback) String() string {
	if r < FallbackReasons {
		return fallbackNames[r]
	}
	return strconv.Itoa(int(r))
}

// DefaultSourceBudget is what the parsed scopes of all files may hold:
// about 670 files the size of typing.py.
const DefaultSourceBudget = 16 << 20

const (
	maxSourceBytes     = 8 << 20 // a larger file keeps co_name
	entryOverheadBytes = 256     // charged per cached file, parsed or not
	procRoot           = "/proc"
	// USER_HZ, /proc/PID/stat's unit of start time on every Linux ABI
	// Ember runs on.
	clockTicksPerSecond = 100
	bootTimeUnknown     = -1
)

// Sources derives the qualified names of code objects from their source
// files, parsing each file once (by device, inode, size and mtime) and
// keeping the parsed scopes of the files used most recently within its
// byte budget. Its zero value is not ready: use NewSources.
type Sources struct {
	mu          sync.Mutex
	budgetBytes int64
	usedBytes   int64
	byFile      map[fileKey]*list.Element // of *parsedSource
	recent      list.List                 // front: used most recently
	bootUnix    int64                     // /proc/stat's btime, read once
	parses      uint64                    // files parsed, for tests
}

type parsedSource struct {
	key    fileKey
	scopes *fileScopes
	err    error
}

func (ps *parsedSource) bytes() int64 {
	if ps.scopes == nil {
		return entryOverheadBytes
	}
	return ps.scopes.bytes + entryOverheadBytes
}

// NewSources returns a cache of parsed sources holding about budgetBytes.
func NewSources(budgetBytes int64) *Sources {
	return &Sources{budgetBytes: budgetBytes, byFile: make(map[fileKey]*list.Element), bootUnix: bootTimeUnknown}
}

// A SourceView is where a process's source files are read: inside its
// root while it lives, by their host path after it exits when its root
// was the host's.
type SourceView struct {
	PID int
	// Start is when the process started (zero: unknown); a file modified
	// since may not be the one its code objects were compiled from.
	Start    time.Time
	HostRoot bool
	// Cwd is the process's working directory as it sees it, read when the
	// view was made (its start, as near as can be): 3.8 keeps the path of
	// a script started as "python3.8 script.py" as given, relative to it.
	// Empty when unknown.
	Cwd string
}

// View returns the view of a live process started startTicks (clock ticks
// after boot, /proc/PID/stat's field 22) in.
func (s *Sources) View(pid int, startTicks uint64) SourceView {
	v := SourceView{PID: pid}
	if boot := s.bootTime(); boot > 0 {
		// btime is in whole seconds, so Start may be up to a second
		// early: a file written just before the process reads as changed.
		v.Start = time.Unix(boot, 0).Add(time.Duration(startTicks) * time.Second / clockTicksPerSecond)
	}
	var own, root unix.Stat_t
	if unix.Stat("/", &own) == nil && unix.Stat(filepath.Join(procRoot, strconv.Itoa(pid), "root"), &root) == nil {
		v.HostRoot = own.Dev == root.Dev && own.Ino == root.Ino
	}
	// The kernel gives the path from the process's root; a directory
	// removed since has " (deleted)" after it, and is no use.
	if cwd, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "cwd")); err == nil &&
		filepath.IsAbs(cwd) && !strings.HasSuffix(cwd, " (deleted)") {
		v.Cwd = cwd
	}
	return v
}

func (s *Sources) bootTime() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bootUnix == bootTimeUnknown {
		s.bootUnix = 0
		raw, _ := os.ReadFile(filepath.Join(procRoot, "stat"))
		for _, l := range bytes.Split(raw, []byte("\n")) {
			if v, ok := bytes.CutPrefix(l, []byte("btime ")); ok {
				s.bootUnix, _ = strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			}
		}
	}
	return s.bootUnix
}

// Qualname is the qualified name of the code object named name that
// starts at line of file, as the process of view sees it, or why there
// is none to give. gone says the process has exited.
func (s *Sources) Qualname(view SourceView, gone bool, file string, line int64, name string) (string, QualnameFallback) {
	if name == "<module>" {
		return name, FallbackNone
	}
	if !filepath.IsAbs(file) {
		// Relative to the directory the process started in; if it moved
		// since, the file found there is checked as any other is (its
		// mtime, a def of that name at that line).
		if view.Cwd == "" || strings.HasPrefix(file, "<") {
			return "", FallbackNoPath
		}
		file = filepath.Join(view.Cwd, file)
	}
	f, why := openSource(view, gone, file)
	if f == nil {
		return "", why
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > maxSourceBytes {
		return "", FallbackUnreadable
	}
	key := fileKey{dev: st.Dev, inode: st.Ino, size: uint64(st.Size), mtimeNanos: st.Mtim.Nano()}
	if !view.Start.IsZero() && key.mtimeNanos > view.Start.UnixNano() {
		return "", FallbackChanged
	}
	ps := s.parsed(f, key)
	switch {
	case errors.Is(ps.err, errNotUTF8):
		return "", FallbackNotUTF8
	case errors.Is(ps.err, errSourceRead):
		return "", FallbackUnreadable
	case ps.err != nil:
		return "", FallbackUnparsed
	}
	return ps.scopes.lookup(line, name)
}

var errSourceRead = errors.New("read the source")

// parsed returns the scopes of the file f is (key), parsing it if no
// parse of it is cached.
func (s *Sources) parsed(f *os.File, key fileKey) *parsedSource {
	s.mu.Lock()
	if el, ok := s.byFile[key]; ok {
		s.recent.MoveToFront(el)
		s.mu.Unlock()
		return el.Value.(*parsedSource)
	}
	s.mu.Unlock()
	ps := &parsedSource{key: key}
	src := make([]byte, key.size+1)
	n, err := io.ReadFull(f, src)
	if err != io.ErrUnexpectedEOF || uint64(n) != key.size {
		ps.err = fmt.Errorf("%w: %d of %d bytes (%v)", errSourceRead, n, key.size, err)
		return ps // changed while read: not cached
	}
	ps.scopes, ps.err = parseScopesSafely(src[:n])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parses++
	if _, ok := s.byFile[key]; !ok {
		s.byFile[key] = s.recent.PushFront(ps)
		s.usedBytes += ps.bytes()
	}
	for s.usedBytes > s.budgetBytes && s.recent.Len() > 1 {
		old := s.recent.Remove(s.recent.Back()).(*parsedSource)
		delete(s.byFile, old.key)
		s.usedBytes -= old.bytes()
	}
	return ps
}

// parseScopesSafely is parseScopes, a bug in which on some other
// process's file must not take the daemon down.
func parseScopesSafely(src []byte) (fs *fileScopes, err error) {
	defer func() {
		if r := recover(); r != nil {
			fs, err = nil, fmt.Errorf("scope finder: %v", r)
		}
	}()
	return parseScopes(src)
}

// openSource opens a source file as the process sees it: in its root,
// with RESOLVE_IN_ROOT so a symlink planted in a container cannot lead to
// the host's files, and non-blocking so a FIFO cannot stall the daemon.
func openSource(view SourceView, gone bool, file string) (*os.File, QualnameFallback) {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY}
	if !gone {
		root, err := unix.Open(filepath.Join(procRoot, strconv.Itoa(view.PID), "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			defer unix.Close(root)
			how.Resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
			fd, err := unix.Openat2(root, file, &how)
			if err != nil {
				return nil, FallbackUnreadable
			}
			return os.NewFile(uintptr(fd), file), FallbackNone
		}
	}
	if !view.HostRoot {
		return nil, FallbackExited
	}
	how.Resolve = unix.RESOLVE_NO_MAGICLINKS
	fd, err := unix.Openat2(unix.AT_FDCWD, file, &how)
	if err != nil {
		return nil, FallbackUnreadable
	}
	return os.NewFile(uintptr(fd), file), FallbackNone
}
