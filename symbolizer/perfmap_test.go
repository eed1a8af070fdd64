package symbolizer

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ember-profiler/ember/model"
)

// fakeProc lays out procRoot/PID/status (with NSpid) and
// procRoot/PID/root/tmp, as /proc shows a containerized process, and
// returns the process's /tmp.
func fakeProc(t *testing.T, procRoot string, pid int, nspid string) string {
	t.Helper()
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	tmp := filepath.Join(dir, "root", "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Name:\tnode\nPid:\t" + strconv.Itoa(pid) + "\nNSpid:\t" + nspid + "\n"
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// TestPerfMap checks that JIT frames in anonymous memory are named from
// /tmp/perf-NSPID.map inside the process's root, with the PID it has in
// its own namespace, and that the map is reread when it grows.
func TestPerfMap(t *testing.T) {
	procRoot := t.TempDir()
	tmp := fakeProc(t, procRoot, 4242, "4242\t7")
	fixture, err := os.ReadFile(filepath.Join(symbolsDir, "perf-7.map"))
	if err != nil {
		t.Fatal(err)
	}
	mapPath := filepath.Join(tmp, "perf-7.map")
	if err := os.WriteFile(mapPath, fixture, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestSymbolizer(t)
	s.procRoot = procRoot
	const jit = 0x7f3a10000000
	proc := process(4242, []model.Mapping{{Start: jit, Limit: jit + 0x10000}})
	// A leaf, then return addresses, looked up one byte back.
	got := userNames(t, s, proc, jit+0x10, jit+0x41, jit+0xc1, jit+0x101, jit+0x201)
	want := []string{
		"LazyCompile:~fib /srv/app/fib.js:3",
		"LazyCompile:*hot /srv/app/hot.js:10",
		"py::compute:/srv/app/compute.py",
		"[unknown in [anon]]", // its line is malformed
		"[unknown in [anon]]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	// The JIT compiles more code: the map grows and is read again.
	f, err := os.OpenFile(mapPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("7f3a10000200 100 LazyCompile:*later /srv/app/later.js:1\n")
	f.Close()
	if got := userNames(t, s, proc, jit+0x210); got[0] != "LazyCompile:*later /srv/app/later.js:1" {
		t.Errorf("after the map grew: %q", got[0])
	}

	// An exited process's map is not read: its PID may be reused.
	proc.Exited = true
	if got := userNames(t, s, proc, jit+0x10); got[0] != "[unknown in [anon]]" {
		t.Errorf("exited process: %q", got[0])
	}
}

// TestPerfMapStaysInRoot checks that a symlink planted as the perf map
// cannot point outside the process's root, and that a FIFO is refused
// without blocking.
func TestPerfMapStaysInRoot(t *testing.T) {
	procRoot := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.map")
	if err := os.WriteFile(outside, []byte("7f3a10000000 1000 host_secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := fakeProc(t, procRoot, 10, "10\t1")
	if err := os.Symlink(outside, filepath.Join(tmp, "perf-1.map")); err != nil {
		t.Fatal(err)
	}
	tmp2 := fakeProc(t, procRoot, 11, "11\t1")
	if err := syscall.Mkfifo(filepath.Join(tmp2, "perf-1.map"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestSymbolizer(t)
	s.procRoot = procRoot
	const jit = 0x7f3a10000000
	for _, pid := range []uint32{10, 11} {
		proc := process(pid, []model.Mapping{{Start: jit, Limit: jit + 0x10000}})
		if got := userNames(t, s, proc, jit+0x10); got[0] != "[unknown in [anon]]" {
			t.Errorf("pid %d: %q, want the perf map refused", pid, got[0])
		}
	}
}

func TestParsePerfMap(t *testing.T) {
	m, err := parsePerfMap(strings.NewReader("1000 10 first\n1000 20 replaced\n2000 0 empty\nffffffffffffffff 10 wraps\n3000 10 name with spaces\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr uint64
		want string
	}{
		{0x1000, "replaced"}, {0x101f, "replaced"}, {0x1020, ""}, {0x2000, ""}, {0x3005, "name with spaces"},
	} {
		if got, _ := m.lookup(tt.addr); got != tt.want {
			t.Errorf("lookup(%#x) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
