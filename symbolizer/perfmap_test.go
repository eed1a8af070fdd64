package symbolizer

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/pprof/profile"

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
		anonWhy(jitNotInMap), // its line is malformed
		anonWhy(jitNotInMap),
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

	// An exited process's map is read through the root held since it ran;
	// a process that had the PID before is not named from it.
	proc.Exited = true
	if got := userNames(t, s, proc, jit+0x10); got[0] != "LazyCompile:~fib /srv/app/fib.js:3" {
		t.Errorf("exited process: %q", got[0])
	}
	older := process(4242, []model.Mapping{{Start: jit, Limit: jit + 0x10000}})
	older.StartTicks, older.Exited = 1, true
	if got := userNames(t, s, older, jit+0x10); got[0] != anonWhy(jitExited) {
		t.Errorf("exited process that had the PID before: %q", got[0])
	}
}

// TestPerfMapWrittenAtExit: a JVM with -XX:+DumpPerfMapAtExit writes its
// map as it exits, when /proc/PID is gone. Its samples are held while it
// runs and named from the map once it exited; what is still held when the
// pipeline stops is named with the reason.
func TestPerfMapWrittenAtExit(t *testing.T) {
	procRoot := t.TempDir()
	tmp := fakeProc(t, procRoot, 5151, "5151")
	fakeProc(t, procRoot, 6161, "6161")
	s := newTestSymbolizer(t)
	s.procRoot = procRoot
	const jit = 0x7f3a10000000
	java := func(pid uint32) *model.Process {
		p := process(pid, []model.Mapping{{Start: jit, Limit: jit + 0x10000}})
		p.Cmdline = []string{"java", "-XX:+UnlockDiagnosticVMOptions", "-XX:+DumpPerfMapAtExit", "Hot"}
		return p
	}
	proc, other := java(5151), java(6161)
	batch := func(procs ...*model.Process) *model.Batch {
		b := &model.Batch{PeriodNanos: 1, Processes: map[model.ProcessKey]*model.Process{}}
		for _, p := range procs {
			b.Samples = append(b.Samples, model.Sample{PID: p.PID, TID: p.PID, User: []uint64{jit + 0x10, jit + 0x41}, Count: 1})
			b.Processes[model.ProcessKey{PID: p.PID}] = p
		}
		return b
	}
	if p, err := s.Profile(batch(proc, other)); err != nil || len(p.Sample) != 0 {
		t.Fatalf("running: %d samples (%v), want both held", len(p.Sample), err)
	}
	// 5151 exits: /proc/5151 goes, the map appears in its /tmp.
	if err := os.WriteFile(filepath.Join(tmp, "perf-5151.map"), []byte("7f3a10000000 40 Hot::spin\n7f3a10000040 40 Hot::main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(procRoot, "5151"), filepath.Join(procRoot, "gone")); err != nil {
		t.Fatal(err)
	}
	p, err := s.Profile(batch())
	if err != nil || len(p.Sample) != 1 {
		t.Fatalf("after 5151 exited: %d samples (%v), want its one", len(p.Sample), err)
	}
	if got := locNames(p.Sample[0]); !slices.Equal(got, []string{"Hot::spin", "Hot::main"}) {
		t.Errorf("after exit: %q", got)
	}
	// The pipeline stops while 6161 runs: its sample says why it is unnamed.
	p, err = s.FlushHeld()
	if err != nil || p == nil || len(p.Sample) != 1 {
		t.Fatalf("flush: %v, %v", p, err)
	}
	if got := locNames(p.Sample[0]); got[0] != anonWhy(jitMapAtExit) || p.Sample[0].NumLabel["pid"][0] != 6161 {
		t.Errorf("flushed: %q %v", got, p.Sample[0].NumLabel)
	}
	if p, _ := s.FlushHeld(); p != nil {
		t.Errorf("second flush: %d samples", len(p.Sample))
	}
}

func locNames(smp *profile.Sample) []string {
	var out []string
	for _, loc := range smp.Location {
		out = append(out, loc.Line[0].Function.Name)
	}
	return out
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
	// The symlink resolves inside the root, where there is no such file.
	for pid, want := range map[uint32]string{10: anonWhy("no /tmp/perf-1.map"), 11: anonWhy(jitMapRefused)} {
		proc := process(pid, []model.Mapping{{Start: jit, Limit: jit + 0x10000}})
		if got := userNames(t, s, proc, jit+0x10); got[0] != want {
			t.Errorf("pid %d: %q, want %q", pid, got[0], want)
		}
	}
}

// anonWhy is the name of an unnamed JIT frame in anonymous memory.
func anonWhy(why string) string { return "[unknown in [anon]: " + why + "]" }

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
