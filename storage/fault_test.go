package storage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
)

// crashChildEnv makes the test binary a child that appends until killed.
const crashChildEnv = "EMBER_STORAGE_CRASH_CHILD"

func init() {
	// Not work at init: this only diverts the re-executed test binary.
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
	}
}

// crashChild appends intervals as fast as it can, printing the start of
// each one acknowledged, until it is killed.
func crashChild(dir string) {
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), MinFreeDiskBytes: 1 << 20})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	g := smallGenerator()
	start := s.Stats().NewestData
	if start.IsZero() {
		start = t0
	}
	for i := 1; ; i++ {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		if err := s.Append(context.Background(), g.Interval(at, 10*time.Second), nil); err != nil {
			fmt.Println("append:", err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", at.UnixNano())
	}
}

// TestCrashKeepsAcknowledgedIntervals kills a child process that is appending
// (kill -9, several rounds) and checks that every interval it acknowledged
// is in the reopened store, whole.
func TestCrashKeepsAcknowledgedIntervals(t *testing.T) {
	dir := t.TempDir()
	g := smallGenerator()
	var acked []int64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill at a different point each round, counted from the first
		// acknowledgement (the child's start is slow under -race).
		deadline := time.After(30 * time.Second)
		n := 0
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				v, ok := strings.CutPrefix(line, "ack ")
				if !ok {
					t.Fatalf("child: %s", line)
				}
				ns, _ := strconv.ParseInt(v, 10, 64)
				acked = append(acked, ns)
				n++
				if n == 1 {
					deadline = time.After(time.Duration(200+150*round) * time.Millisecond)
				}
			case <-deadline:
				break read
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for range lines {
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("round %d: child acknowledged nothing", round)
		}
	}
	s := openTest(t, Options{Dir: dir})
	ctx := context.Background()
	for _, ns := range acked {
		at := time.Unix(0, ns)
		got, err := s.Query(ctx, ProfileQuery{From: at, To: at.Add(time.Nanosecond)})
		if err != nil {
			t.Fatal(err)
		}
		if c, w := canonical(got, nil), canonical(g.Interval(at, 10*time.Second), nil); c != w {
			t.Fatalf("acknowledged interval at %s: stored %d bytes of rendering, want %d", at, len(c), len(w))
		}
	}
	t.Logf("%d acknowledged intervals over 3 kills all present", len(acked))
	// The store goes on, and its roll-ups agree with the raw intervals.
	last := time.Unix(0, acked[len(acked)-1])
	appendRange(t, s, g, last.Add(time.Hour), 10*time.Second, 2, nil)
	q := ProfileQuery{From: t0, To: last.Add(2 * time.Hour)}
	fast, err := s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	s.opts.noRollups = true
	raw, err := s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if canonical(fast, nil) != canonical(raw, nil) {
		t.Error("after the crashes, roll-ups and raw intervals differ")
	}
}

func TestDiskFullInjected(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 30)
	s := openTest(t, Options{MinFreeDiskBytes: 100 << 20, freeBytes: func(string) (int64, error) { return free.Load(), nil }})
	g := smallGenerator()
	ctx := context.Background()
	appendRange(t, s, g, t0, 10*time.Second, 3, nil)
	free.Store(99 << 20)
	for i := range 3 {
		err := s.Append(ctx, g.Interval(t0.Add(time.Duration(3+i)*10*time.Second), 10*time.Second), nil)
		if !errors.Is(err, ErrDiskFull) {
			t.Fatalf("append with 99 MiB free of 100: %v, want ErrDiskFull", err)
		}
	}
	// Queries go on.
	if _, err := s.Query(ctx, ProfileQuery{From: t0, To: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("query while full: %v", err)
	}
	free.Store(200 << 20)
	appendRange(t, s, g, t0.Add(time.Minute), 10*time.Second, 3, nil)
	st := s.Stats()
	if st.IntervalsWritten != 6 || st.DiskFullRejections != 3 {
		t.Errorf("stats = %+v, want 6 intervals written and 3 rejections", st)
	}
	if st.WriteErrors != 0 {
		t.Errorf("write errors = %d, want 0 (a full disk is counted apart)", st.WriteErrors)
	}
}

// TestDiskFullTmpfs fills a real 64 MiB filesystem with a ballast file until
// the store refuses to write, then frees it and writes again.
func TestDiskFullTmpfs(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if testenv.InCI() {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (%v: %s); the injected-error test covers the logic", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "store")
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), MinFreeDiskBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := smallGenerator()
	ctx := context.Background()
	appendRange(t, s, g, t0, 10*time.Second, 3, nil)
	free, err := filesystemFreeBytes(mnt)
	if err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, free-12<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Append(ctx, g.Interval(t0.Add(time.Minute), 10*time.Second), nil)
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append with 12 MiB free of 16 kept: %v, want ErrDiskFull", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	appendRange(t, s, g, t0.Add(2*time.Minute), 10*time.Second, 3, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Dir: dir, Logger: quietLogger(), MinFreeDiskBytes: 16 << 20})
	if err != nil {
		t.Fatalf("reopen on the tmpfs: %v", err)
	}
	defer s2.Close()
	if st := s2.Stats(); !st.NewestData.Equal(t0.Add(2*time.Minute + 20*time.Second)) {
		t.Errorf("newest data after reopen %v", st.NewestData)
	}
}

// snapshot maps each path under dir to its size, mode, mtime and content hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Directories are compared by their entries: Badger creates and
		// removes its lock file before it reads the manifest.
		desc := fmt.Sprintf("%v", info.Mode())
		if !d.IsDir() {
			desc += fmt.Sprintf(" %d %d", info.Size(), info.ModTime().UnixNano())
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed: %q -> %q", p, d, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

func TestRefusesForeignAndCorruptDirectories(t *testing.T) {
	// A store to corrupt copies of.
	good := t.TempDir()
	s := openTest(t, Options{Dir: good})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 5, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"foreign files", func(dir string) {
			os.WriteFile(filepath.Join(dir, "important.txt"), []byte("mine"), 0o600)
			os.Mkdir(filepath.Join(dir, "photos"), 0o700)
		}, "is not an Ember store"},
		{"unknown format", func(dir string) {
			copyDir(t, good, dir)
			os.WriteFile(filepath.Join(dir, markerFile), []byte("ember store format 99\n"), 0o600)
		}, "format version 99"},
		{"garbled marker", func(dir string) {
			copyDir(t, good, dir)
			os.WriteFile(filepath.Join(dir, markerFile), []byte("\x00\x01garbage"), 0o600)
		}, "does not look like an Ember store marker"},
		{"corrupt manifest", func(dir string) {
			copyDir(t, good, dir)
			os.WriteFile(filepath.Join(dir, badgerDir, "MANIFEST"), []byte("not a manifest at all, just text"), 0o600)
		}, "MANIFEST does not read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(dir)
			before := snapshot(t, dir)
			s, err := Open(Options{Dir: dir, Logger: quietLogger()})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			t.Log(err)
			checkUnchanged(t, dir, before)
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o750)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
