package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
)

// fullDiskChildEnv makes the test binary a child that runs one step of
// TestDiskFullAtCloseAndOpen: Badger dies with SIGBUS (a fatal runtime
// error, not a panic) on a full disk, which must fail the test, not kill
// the test binary.
const fullDiskChildEnv = "EMBER_STORAGE_FULL_DISK_CHILD"

func init() {
	// Not work at init: this only diverts the re-executed test binary.
	if step := os.Getenv(fullDiskChildEnv); step != "" {
		fullDiskChild(step, os.Getenv("EMBER_STORAGE_DIR"), os.Getenv("EMBER_STORAGE_BALLAST"))
	}
}

// fullDiskChild runs one step and exits 0 unless a step failed outright.
// "close": open, append, fill the disk, close. "open": open on the full
// disk.
func fullDiskChild(step, dir, ballast string) {
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), MinFreeDiskBytes: 16 << 20})
	fmt.Printf("open: %v\n", err)
	if err != nil {
		os.Exit(0)
	}
	if step == "close" {
		g := smallGenerator()
		for i := range 6 {
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			if err := s.Append(context.Background(), g.Interval(at, 10*time.Second), nil); err != nil {
				fmt.Println("append:", err)
				os.Exit(1)
			}
			fmt.Printf("ack %d\n", at.UnixNano())
		}
		if err := fillDisk(ballast); err != nil {
			fmt.Println("fill:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("close: %v\n", s.Close())
	os.Exit(0)
}

// fillDisk writes path until the filesystem has no block left.
func fillDisk(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10} {
		buf := bytes.Repeat([]byte{1}, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				return err
			}
		}
	}
	return nil
}

// mountTmpfs mounts a tmpfs of the given size on a temporary directory.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	testenv.RequireRoot(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		if testenv.InCI() {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// runFullDiskChild runs one step in a child process and returns its output
// lines; a child that died (SIGBUS, a panic) fails the test.
func runFullDiskChild(t *testing.T, step, dir, ballast string) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fullDiskChildEnv+"="+step, "EMBER_STORAGE_DIR="+dir, "EMBER_STORAGE_BALLAST="+ballast)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		errText := stderr.String()
		if i := strings.Index(errText, "\ngoroutine "); i > 0 {
			errText = errText[:i]
		}
		t.Fatalf("step %q on a full disk: the store process died (%v):\n%s\n%s", step, err, stdout.String(), errText)
	}
	var lines []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func lineWith(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestDiskFullAtCloseAndOpen fills a real filesystem under an open store,
// then closes it (Badger's memtable flush writes through mmap) and opens
// it again (Badger starts a new write-ahead log through mmap): neither may
// crash, and once space returns every acknowledged interval is there.
func TestDiskFullAtCloseAndOpen(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	dir, ballast := filepath.Join(mnt, "store"), filepath.Join(mnt, "ballast")

	lines := runFullDiskChild(t, "close", dir, ballast)
	var acked []time.Time
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "ack "); ok {
			ns, _ := strconv.ParseInt(v, 10, 64)
			acked = append(acked, time.Unix(0, ns))
		}
	}
	if len(acked) != 6 {
		t.Fatalf("child acknowledged %d intervals, want 6: %q", len(acked), lines)
	}
	if l := lineWith(lines, "close: "); !strings.Contains(l, "disk full") || !strings.Contains(l, "write-ahead log") {
		t.Errorf("close on a full disk said %q, want that it left the write-ahead log", l)
	}

	before := snapshot(t, dir)
	lines = runFullDiskChild(t, "open", dir, ballast)
	if l := lineWith(lines, "open: "); !strings.Contains(l, "disk full") || !strings.Contains(l, "free space") {
		t.Errorf("open on a full disk said %q, want a disk-full refusal", l)
	}
	checkUnchanged(t, dir, before)

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), MinFreeDiskBytes: 16 << 20})
	if err != nil {
		t.Fatalf("open once space is back: %v", err)
	}
	defer s.Close()
	g := smallGenerator()
	for _, at := range acked {
		got, err := s.Query(context.Background(), ProfileQuery{From: at, To: at.Add(time.Nanosecond)})
		if err != nil {
			t.Fatal(err)
		}
		if canonical(got, nil) != canonical(g.Interval(at, 10*time.Second), nil) {
			t.Errorf("acknowledged interval at %s lost or changed after the full-disk close", at.UTC())
		}
	}
}
