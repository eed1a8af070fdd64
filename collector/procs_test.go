package collector

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		line string
		want model.Mapping
		exec bool
	}{
		{
			line: "55d0c8a00000-55d0c8a21000 r-xp 00002000 fd:01 1835030                    /usr/bin/yes",
			want: model.Mapping{Start: 0x55d0c8a00000, Limit: 0x55d0c8a21000, Offset: 0x2000, Dev: unix.Mkdev(0xfd, 1), Inode: 1835030, Path: "/usr/bin/yes"},
			exec: true,
		},
		{
			line: "7f0000000000-7f0000001000 r-xp 00000000 08:02 42 /tmp/my lib.so (deleted)",
			want: model.Mapping{Start: 0x7f0000000000, Limit: 0x7f0000001000, Dev: unix.Mkdev(8, 2), Inode: 42, Path: "/tmp/my lib.so", Deleted: true},
			exec: true,
		},
		{
			line: "7ffd1e5f2000-7ffd1e5f4000 r-xp 00000000 00:00 0                          [vdso]",
			want: model.Mapping{Start: 0x7ffd1e5f2000, Limit: 0x7ffd1e5f4000, Path: "[vdso]"},
			exec: true,
		},
		{
			line: "7f1c2a600000-7f1c2a800000 rw-p 00000000 00:00 0 ",
			want: model.Mapping{Start: 0x7f1c2a600000, Limit: 0x7f1c2a800000},
		},
	}
	for _, tt := range tests {
		got, exec, err := parseMapsLine(tt.line)
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if got != tt.want || exec != tt.exec {
			t.Errorf("%q:\n got %+v exec=%v\nwant %+v exec=%v", tt.line, got, exec, tt.want, tt.exec)
		}
	}
	for _, bad := range []string{"", "zz-10 r-xp 0 00:00 0", "10-20 r-xp 0 0000 0", "10-20 r-xp 0 00:00 x"} {
		if _, _, err := parseMapsLine(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	raw := []byte("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 100 18446744073709551615 4194304 4196000 140737\n")
	st, err := parseStat(raw)
	if err != nil || st.comm != "a (weird) name" || st.startTicks != 987654 || st.startCode != 4194304 {
		t.Fatalf("got %+v %v", st, err)
	}
	if _, err := parseStat([]byte("1 (x) S 1")); err == nil {
		t.Error("short stat: no error")
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0-2,5,7-8")
	want := []int{0, 1, 2, 5, 7, 8}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %v %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	if got := parseCgroup([]byte("0::/system.slice/nginx.service\n")); got != "/system.slice/nginx.service" {
		t.Errorf("v2: %q", got)
	}
	if got := parseCgroup([]byte("12:cpu,cpuacct:/a\n11:memory:/a\n")); got != "cpu,cpuacct:/a;memory:/a" {
		t.Errorf("v1: %q", got)
	}
}

// The tracker reads this very process and holds its executable open.
func TestSnapshotSelf(t *testing.T) {
	tr := newProcessTracker("/proc", 100, nil, nil)
	defer tr.close()
	p, files := tr.snapshot(model.ProcessKey{PID: uint32(os.Getpid())}, 0)
	if p.SnapshotErr != nil {
		t.Fatal(p.SnapshotErr)
	}
	exe, _ := os.Executable()
	found := false
	for _, m := range p.Mappings {
		if m.Path == exe && m.File != nil {
			found = true
		}
	}
	if !found {
		t.Errorf("executable %s not among held mappings %+v", exe, p.Mappings)
	}
	if len(files) == 0 || p.StartTicks == 0 {
		t.Errorf("incomplete snapshot: %+v", p)
	}
	if link, _ := os.Readlink("/proc/self/exe"); p.Exe != link {
		t.Errorf("exe %q, the exe link says %q", p.Exe, link)
	}
	tr.release(files)
	if len(tr.files) != 0 {
		t.Errorf("%d files still held after release", len(tr.files))
	}
}

func TestSnapshotGoneProcess(t *testing.T) {
	tr := newProcessTracker("/proc", 100, nil, nil)
	p, _ := tr.snapshot(model.ProcessKey{PID: 4000000}, 0)
	if p.SnapshotErr == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

// Processes whose exit was never reported are found by the sweep and
// forgotten, and their files closed, so the tracker cannot grow forever.
func TestTrackerForgetsDeadProcesses(t *testing.T) {
	tr := newProcessTracker("/proc", 100, nil, nil)
	defer tr.close()
	self := uint32(os.Getpid())
	tr.observe(model.ProcessKey{PID: self}, 0)
	gone := model.ProcessKey{PID: 4000000}
	tr.procs[gone] = &trackedProcess{snapshot: &model.Process{PID: 4000000, StartTicks: 1}}
	for range 2*sweepEvery + 3 {
		tr.advance()
	}
	if tr.procs[gone] != nil {
		t.Error("a process that no longer exists is still tracked")
	}
	if tr.procs[model.ProcessKey{PID: self}] == nil {
		t.Error("a live process was forgotten")
	}
	tr.exited(self)
	// Forgotten at the drain after the exit; files closed two drains later.
	for range 4 {
		tr.advance()
	}
	if len(tr.procs) != 0 || len(tr.files) != 0 {
		t.Errorf("after exit: %d processes and %d files still held", len(tr.procs), len(tr.files))
	}
}

// Mappings read after an execve replaced the sampled image must not be
// passed off as that image's.
func TestSnapshotRejectsReplacedImage(t *testing.T) {
	tr := newProcessTracker("/proc", 100, nil, nil)
	defer tr.close()
	self := model.ProcessKey{PID: uint32(os.Getpid())}
	p, _ := tr.snapshot(self, 0x1234) // not this image's start of code
	if p.SnapshotErr != errImageReplaced {
		t.Fatalf("got %v, want errImageReplaced", p.SnapshotErr)
	}
	lookup := func(uint32) (uint32, uint64, bool) { return 7, 0, true }
	tr = newProcessTracker("/proc", 100, nil, lookup)
	defer tr.close()
	if p, _ := tr.snapshot(model.ProcessKey{PID: self.PID, ExecSeq: 6}, 0); p.SnapshotErr != errImageReplaced {
		t.Fatalf("older image: got %v, want errImageReplaced", p.SnapshotErr)
	}
	if p, _ := tr.snapshot(model.ProcessKey{PID: self.PID, ExecSeq: 7}, 0); p.SnapshotErr != nil {
		t.Fatalf("current image: %v", p.SnapshotErr)
	}
}

// A new image of a process ends the old one, whose snapshot stays usable
// for samples taken before the execve.
func TestNewImageEndsOld(t *testing.T) {
	tr := newProcessTracker("/proc", 100, nil, nil)
	defer tr.close()
	pid := uint32(os.Getpid())
	tr.observe(model.ProcessKey{PID: pid, ExecSeq: 0}, 0)
	tr.observe(model.ProcessKey{PID: pid, ExecSeq: 1}, 0)
	old := tr.procs[model.ProcessKey{PID: pid, ExecSeq: 0}]
	if old == nil || !old.snapshot.Exited || len(old.snapshot.Mappings) == 0 {
		t.Fatalf("old image: %+v", old)
	}
	if tr.procs[model.ProcessKey{PID: pid, ExecSeq: 1}].snapshot.Exited {
		t.Error("new image marked exited")
	}
}

// Samples of an image seen only after execve replaced it (taken inside the
// execve) are read at the drain, after the new image: that failed read
// must not end the new image, whose ranges would be dropped with it.
func TestReplacedImageReadLeavesNewOne(t *testing.T) {
	pid := uint32(os.Getpid())
	lookup := func(uint32) (uint32, uint64, bool) { return 1, 0, true }
	tr := newProcessTracker("/proc", 100, nil, lookup)
	defer tr.close()
	tr.observe(model.ProcessKey{PID: pid, ExecSeq: 1}, 0)
	if p := tr.observe(model.ProcessKey{PID: pid, ExecSeq: 0}, 0); p.SnapshotErr != errImageReplaced {
		t.Fatalf("older image: got %v, want errImageReplaced", p.SnapshotErr)
	}
	if !tr.alive(pid, 1) {
		t.Error("the current image was marked exited by a failed read of the one before it")
	}
}

func TestContainerID(t *testing.T) {
	id := "4f1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	for cgroup, want := range map[string]string{
		"/docker/" + id:                         id,
		"/system.slice/docker-" + id + ".scope": id,
		"/kubepods.slice/kubepods-burstable.slice/pod1234/cri-containerd-" + id + ".scope": id,
		"/kubepods/besteffort/podabc/" + id:                                                id,
		"/machine.slice/libpod-" + id + ".scope/container":                                 id,
		"/user.slice/user-0.slice/session-3.scope":                                         "",
		"/system.slice/nginx.service":                                                      "",
	} {
		if got := containerID(cgroup); got != want {
			t.Errorf("%s: got %q, want %q", cgroup, got, want)
		}
	}
}

// A held batch keeps the files of a process that exited open for as many
// drains as its naming takes, and lets them go when released.
func TestHeldBatchKeepsFilesUntilReleased(t *testing.T) {
	tr := newProcessTracker("/proc", 100, nil, nil)
	defer tr.close()
	self := uint32(os.Getpid())
	procs, hold := tr.processesFor([]model.Sample{{PID: self, TID: self, Count: 1}}, true)
	if hold == nil || len(hold.files) == 0 {
		t.Fatal("no files held for this process")
	}
	var file *os.File
	for _, m := range procs[model.ProcessKey{PID: self}].Mappings {
		if m.File != nil {
			file = m.File
			break
		}
	}
	tr.exited(self)
	for range 10 { // a naming stage ten drains behind
		tr.advance()
	}
	if _, err := file.Stat(); err != nil {
		t.Fatalf("a held batch's file was closed before release: %v", err)
	}
	hold.Release()
	hold.Release() // twice is harmless
	if len(tr.files) != 0 {
		t.Errorf("%d files still open after the batch was released", len(tr.files))
	}
	if _, err := file.Stat(); err == nil {
		t.Error("a released file is still open")
	}
}

// A zombie's maps are empty and its start of code 0: reading it must say
// the process exited, not hand out an image with no mappings.
func TestSnapshotZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start true: %v", err)
	}
	defer cmd.Wait()
	pid := uint32(cmd.Process.Pid)
	// Not waited for, it stays a zombie once it has exited.
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := parseStat(raw); err == nil && st.state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tr := newProcessTracker("/proc", 100, nil, nil)
	defer tr.close()
	p, files := tr.snapshot(model.ProcessKey{PID: pid}, 0)
	if !errors.Is(p.SnapshotErr, errExited) || len(files) != 0 {
		t.Fatalf("zombie snapshot: err %v, %d files, %d mappings", p.SnapshotErr, len(files), len(p.Mappings))
	}
}

// writeFakeProc writes the /proc files snapshot reads for one process.
func writeFakeProc(t *testing.T, root string, pid uint32, state byte, maps string) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (burner) %c 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 4242 1000 100 18446744073709551615 0 0 0\n", pid, state)
	for name, body := range map[string]string{"stat": stat, "maps": maps, "cmdline": "burner\x00"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A batch whose samples leave the known mappings reads them again; when the
// process has become a zombie meanwhile, the good snapshot must stay, or
// every frame of the batch would be "in no mapping".
func TestRefreshKeepsMappingsOfZombie(t *testing.T) {
	const pid = 4242
	root, tr, key := trackedBurner(t, pid)
	for _, state := range []byte{'Z', 'R'} { // a zombie, then one past exit_mm
		writeFakeProc(t, root, pid, state, "")
		samples := []model.Sample{
			{PID: pid, TID: pid, ExecSeq: 1, Count: 1, User: []uint64{0x400100}},
			{PID: pid, TID: pid, ExecSeq: 1, Count: 1, User: []uint64{0x7f0000001000, 0x400200}},
		}
		procs, _ := tr.processesFor(samples, false)
		p := procs[key]
		if p == nil || len(p.Mappings) != 1 || p.FindMapping(0x400200) == nil {
			t.Fatalf("state %c: snapshot after the refresh: %+v", state, p)
		}
		if !p.Exited {
			t.Errorf("state %c: the re-read found the process gone, but it is not marked exited", state)
		}
		tr.procs[key].exitedAt = 0 // alive again for the next round
		tr.procs[key].snapshot.Exited = false
	}
}

// A /proc read that races the exit sees the mappings half unmapped: a short
// rustc read so lost libc, the root of every stack. The sampler's record of
// the image names what that snapshot cannot.
func TestExitedSnapshotCompletedFromRecord(t *testing.T) {
	const pid = 4343
	_, tr, key := trackedBurner(t, pid)
	tr.exited(pid)
	tr.rememberRecorded(pid, recordedImage{execSeq: 1, mappings: []model.Mapping{
		{Start: 0x400000, Limit: 0x401000, Inode: 77},
		{Start: 0x7f0000000000, Limit: 0x7f0000100000, Offset: 0x26000, Inode: 78},
	}})
	samples := []model.Sample{{PID: pid, TID: pid, ExecSeq: 1, Count: 1, User: []uint64{0x400100, 0x7f0000001000}}}
	procs, _ := tr.processesFor(samples, false)
	p := procs[key]
	if p == nil || p.FindMapping(0x7f0000001000) == nil || p.FindMapping(0x400100) == nil {
		t.Fatalf("the exited image's snapshot does not name its samples: %+v", p)
	}
	if !p.Exited {
		t.Error("the snapshot from the record is not marked exited")
	}
	// A record that names no more than the snapshot leaves it as it was.
	tr.rememberRecorded(pid, recordedImage{execSeq: 1, mappings: []model.Mapping{{Start: 0x400000, Limit: 0x401000, Inode: 77}}})
	samples[0].User = []uint64{0x7f0000201000}
	before := tr.procs[key].snapshot
	procs, _ = tr.processesFor(samples, false)
	if procs[key] != before {
		t.Error("a record that names nothing more replaced the snapshot")
	}
}

// trackedBurner is a tracker over a fake /proc whose process pid maps one
// executable page of /usr/bin/burner, already read once.
func trackedBurner(t *testing.T, pid uint32) (root string, tr *processTracker, key model.ProcessKey) {
	t.Helper()
	root = t.TempDir()
	writeFakeProc(t, root, pid, 'R', "400000-401000 r-xp 00000000 fd:01 77 /usr/bin/burner\n")
	tr = newProcessTracker(root, 100, nil, nil)
	t.Cleanup(tr.close)
	key = model.ProcessKey{PID: pid, ExecSeq: 1}
	if p := tr.observe(key, 0); p.SnapshotErr != nil || len(p.Mappings) != 1 {
		t.Fatalf("first snapshot: %+v", p)
	}
	return root, tr, key
}
