package symbolizer

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/internal/testenv"
)

// containerProcess lays out a fake /proc holding process pid whose root
// directory is a temporary tree, and returns procRoot and that root.
func containerProcess(t *testing.T, pid int) (procRoot, root string) {
	t.Helper()
	procRoot = t.TempDir()
	root = filepath.Join(procRoot, "rootfs")
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	for _, d := range []string{root, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(root, filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	return procRoot, root
}

// inotifyOpens watches directories for files opened in them (IN_OPEN,
// which an O_PATH lookup does not raise) and returns a function that
// lists the names opened so far.
func inotifyOpens(t *testing.T, dirs ...string) func() []string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	names := map[int32]string{}
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, unix.IN_OPEN)
		if err != nil {
			t.Fatal(err)
		}
		names[int32(wd)] = d
	}
	return func() []string {
		var opened []string
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil || n <= 0 {
				return opened
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				opened = append(opened, filepath.Join(names[ev.Wd], name))
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// TestDebugLinkStaysInProcessRoot checks that the directory a process
// sees its binary in, and the .gnu_debuglink name, never lead the daemon
// to a host file: the debug file beside the object is looked for only
// inside the process's root, symlinks there cannot leave it, and a FIFO
// planted there is never opened.
func TestDebugLinkStaysInProcessRoot(t *testing.T) {
	binary, err := os.ReadFile(symbolsFixture(t, "inline-debuglink"))
	if err != nil {
		t.Fatal(err)
	}
	debug, err := os.ReadFile(symbolsFixture(t, "inline.debug"))
	if err != nil {
		t.Fatal(err)
	}
	// The host file the process aims at (think /etc/shadow): a valid debug
	// file with the right CRC, so any open of it would also name frames.
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "inline.debug"), debug, 0o644); err != nil {
		t.Fatal(err)
	}
	// The binary as mapped; the process sees it at hostDir/inline-debuglink.
	objPath := filepath.Join(t.TempDir(), "inline-debuglink")
	if err := os.WriteFile(objPath, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	start, _ := symbolRange(t, symbolsFixture(t, "inline"), "alpha")

	const pid = 7
	for _, tt := range []struct {
		name  string
		plant func(t *testing.T, root string) // inside the process's root
		named bool
	}{
		{"host directory", func(t *testing.T, root string) {}, false},
		{"own debug file", func(t *testing.T, root string) {
			writeIn(t, filepath.Join(root, hostDir, "inline.debug"), debug)
		}, true},
		{"absolute symlink", func(t *testing.T, root string) {
			symlinkIn(t, filepath.Join(hostDir, "inline.debug"), filepath.Join(root, hostDir, "inline.debug"))
		}, false},
		{"relative symlink", func(t *testing.T, root string) {
			rel := strings.Repeat("../", strings.Count(filepath.Join(root, hostDir), "/")) + strings.TrimPrefix(hostDir, "/") + "/inline.debug"
			symlinkIn(t, rel, filepath.Join(root, hostDir, ".debug", "inline.debug"))
		}, false},
		{"fifo", func(t *testing.T, root string) {
			mkdirIn(t, filepath.Join(root, hostDir))
			if err := syscall.Mkfifo(filepath.Join(root, hostDir, "inline.debug"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			procRoot, root := containerProcess(t, pid)
			tt.plant(t, root)
			mkdirIn(t, filepath.Join(root, hostDir))
			opens := inotifyOpens(t, hostDir, filepath.Join(root, hostDir))
			s := newTestSymbolizer(t)
			s.procRoot = procRoot
			ms := loadPathAt(t, objPath, filepath.Join(hostDir, "inline-debuglink"), pieBase)
			addr := start + pieBase - firstLoad(t, objPath)
			proc := process(pid, ms)
			done := make(chan []string, 1)
			go func() { done <- userNames(t, s, proc, addr) }()
			var got []string
			select {
			case got = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the lookup blocked")
			}
			if named := got[0] == "alpha"; named != tt.named {
				t.Errorf("named %q; want named from a debug file: %v", got[0], tt.named)
			}
			own := filepath.Join(root, hostDir, "inline.debug")
			ownOpened := false
			for _, o := range opens() {
				switch {
				case o == filepath.Join(hostDir, "inline.debug"):
					t.Errorf("opened the host's %s", o)
				case o == own && !tt.named:
					t.Errorf("opened %s", o)
				}
				ownOpened = ownOpened || o == own
			}
			if tt.named && !ownOpened {
				t.Error("inotify saw no open of the debug file that named the frames")
			}
		})
	}
}

// TestDebugLinkNames checks that a .gnu_debuglink name is one plain file
// name, whatever the ELF says.
func TestDebugLinkNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"libc.so.6.debug":        true,
		"../../../../etc/shadow": false,
		"..":                     false,
		".":                      false,
		"a/b":                    false,
		"tty\x1b[0m":             false,
		strings.Repeat("x", 255): true,
		strings.Repeat("x", 256): false,
	} {
		data := append([]byte(name), 0)
		for len(data)%4 != 0 {
			data = append(data, 0)
		}
		data = append(data, 1, 2, 3, 4)
		if _, got := parseDebugLink(data, true); got != ok {
			t.Errorf("%q accepted: %v, want %v", name, got, ok)
		}
	}
	// The fixture with its link renamed in place: refused, never looked up.
	binary, err := os.ReadFile(symbolsFixture(t, "inline-debuglink"))
	if err != nil {
		t.Fatal(err)
	}
	hostile := bytes.Replace(binary, []byte("inline.debug\x00"), []byte("../../shadow\x00"), 1)
	if bytes.Equal(hostile, binary) {
		t.Fatal("fixture has no debuglink to rename")
	}
	ef, err := newELF(bytes.NewReader(hostile))
	if err != nil {
		t.Fatal(err)
	}
	if link, ok := readDebugLink(ef); ok {
		t.Errorf("debuglink %q accepted", link.name)
	}
}

// TestDebugCandidatesStayInRoots checks that every place looked at is
// inside a debug root or the process's root, for hostile paths.
func TestDebugCandidatesStayInRoots(t *testing.T) {
	for _, path := range []string{"/usr/bin/prog", "/../../etc/prog", "/a/../../../etc/x", "relative/prog"} {
		for _, c := range debugFileCandidates([]string{"/usr/lib/debug"}, "ab../cd", debugLink{name: "shadow"}, true, path) {
			if c.trusted {
				t.Errorf("%s: %+v trusted with a build ID that is not hex", path, c)
			}
			if !filepath.IsAbs(c.path) || filepath.Clean(c.path) != c.path || strings.Contains(c.path, "..") {
				t.Errorf("%s: candidate %+v is not a clean path inside its root", path, c)
			}
		}
	}
}

// TestDebugFileNotDevice checks that a device node where a debug file is
// looked for is refused from its O_PATH stat, before any open.
func TestDebugFileNotDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a device node")
	}
	dir := t.TempDir()
	if err := unix.Mknod(filepath.Join(dir, "dev.debug"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod: %v", err)
	}
	opens := inotifyOpens(t, dir)
	_, err := openDebugCandidate(debugCandidate{root: dir, path: "/dev.debug", by: "path"}, nil, nil)
	if err == nil {
		t.Fatal("device node opened as a debug file")
	}
	if o := opens(); len(o) > 0 {
		t.Errorf("opened %v", o)
	}
}

func writeIn(t *testing.T, path string, data []byte) {
	t.Helper()
	mkdirIn(t, filepath.Dir(path))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlinkIn(t *testing.T, target, path string) {
	t.Helper()
	mkdirIn(t, filepath.Dir(path))
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func mkdirIn(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestDebugLinkInMountNamespace runs a process in a mount namespace of its
// own, where a tmpfs over a directory holds the debug file of an object
// the process maps from that directory, while on the host the same
// directory holds a FIFO by that name. The debug file must be found
// through the process's root in /proc, and the host's FIFO never opened;
// with the wrong start time (a reused PID) nothing is found.
func TestDebugLinkInMountNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "inline.debug"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `mount -t tmpfs none "$1" && cp "$2" "$1/inline.debug" && echo ready && exec sleep 60`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, "sh", dir, symbolsFixture(t, "inline.debug"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		t.Skipf("cannot mount in a new mount namespace here: %q %v", line, err)
	}
	pid := cmd.Process.Pid
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	startTicks, err := strconv.ParseUint(fields[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}

	opens := inotifyOpens(t, dir)
	start, _ := symbolRange(t, symbolsFixture(t, "inline"), "alpha")
	objPath := symbolsFixture(t, "inline-debuglink")
	addr := start + pieBase - firstLoad(t, objPath)
	for _, tt := range []struct {
		startTicks uint64
		want       string
	}{
		{startTicks + 1, "[unknown in inline-debuglink+"},
		{startTicks, "alpha"},
	} {
		s := newTestSymbolizer(t)
		s.procRoot = "/proc"
		proc := process(uint32(pid), loadPathAt(t, objPath, filepath.Join(dir, "inline-debuglink"), pieBase))
		proc.StartTicks = tt.startTicks
		if got := userNames(t, s, proc, addr); !strings.HasPrefix(got[0], tt.want) {
			t.Errorf("start time %d (the process's: %d): %q, want %s", tt.startTicks, startTicks, got[0], tt.want)
		}
	}
	if o := opens(); len(o) > 0 {
		t.Errorf("opened on the host: %v", o)
	}
}

// TestDebugFileByPathUnderRoot checks the lookup by the object's path
// under a debug root, resolved inside that root: a symlink there cannot
// lead out of it.
func TestDebugFileByPathUnderRoot(t *testing.T) {
	debug, err := os.ReadFile(symbolsFixture(t, "inline.debug"))
	if err != nil {
		t.Fatal(err)
	}
	objPath := symbolsFixture(t, "inline-buildid")
	start, _ := symbolRange(t, symbolsFixture(t, "inline"), "alpha")
	addr := start + pieBase - firstLoad(t, objPath)
	outside := filepath.Join(t.TempDir(), "inline.debug")
	writeIn(t, outside, debug)
	for _, tt := range []struct {
		name  string
		plant func(root string)
		want  string
	}{
		{"file", func(root string) { writeIn(t, filepath.Join(root, "srv/app/inline-buildid.debug"), debug) }, "alpha"},
		{"symlink out", func(root string) { symlinkIn(t, outside, filepath.Join(root, "srv/app/inline-buildid.debug")) }, "[unknown in inline-buildid+"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.plant(root)
			s := newTestSymbolizer(t)
			s.debugDirs = append([]string{root}, s.debugDirs...)
			proc := process(1, loadPathAt(t, objPath, "/srv/app/inline-buildid", pieBase))
			if got := userNames(t, s, proc, addr); !strings.HasPrefix(got[0], tt.want) {
				t.Errorf("%q, want %s", got[0], tt.want)
			}
		})
	}
}
