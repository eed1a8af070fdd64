package collector

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

// The ioctl and the text must list the same executable mappings, deleted
// files (a memfd) and the vdso included.
func TestQueryExecMappingsMatchesMapsText(t *testing.T) {
	fd, err := unix.MemfdCreate("ember-procmaps", 0)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, 4096); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_SHARED)
	if err != nil {
		t.Skipf("executable memfd mapping: %v", err)
	}
	defer unix.Munmap(mem)
	// A JIT compiler's code and the reserve after it: a page of anonymous
	// code, then 2 MiB without access.
	page := os.Getpagesize()
	jit, err := unix.Mmap(-1, 0, page+2<<20, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(jit)
	if err := unix.Mprotect(jit[page:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	jitStart := uint64(uintptr(unsafe.Pointer(&jit[0])))
	wantReserve := model.AddressRange{Start: jitStart + uint64(page), Limit: jitStart + uint64(page) + 2<<20}

	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	// Until its loader has mapped its libraries, a read of the text and
	// the ioctl's may see different mappings.
	childMaps := "/proc/" + strconv.Itoa(child.Process.Pid) + "/maps"
	for settled, last := 0, ""; settled < 3; {
		time.Sleep(20 * time.Millisecond)
		raw, err := os.ReadFile(childMaps)
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) == last {
			settled++
		} else {
			settled, last = 0, string(raw)
		}
	}

	for _, pid := range []string{"self", strconv.Itoa(child.Process.Pid)} {
		path := "/proc/" + pid + "/maps"
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		all, textReserves, err := parseMaps(raw)
		if err != nil {
			t.Fatal(err)
		}
		// The vsyscall page is no VMA of the process; no stack is in it.
		var want []model.Mapping
		for _, m := range all {
			if m.Path != "[vsyscall]" {
				want = append(want, m)
			}
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, reserves, empty, err := queryExecMappings(f)
		f.Close()
		if err == errNoProcmapQuery {
			t.Skip("this kernel has no PROCMAP_QUERY (before 6.11); the text is read instead")
		}
		if err != nil || empty {
			t.Fatalf("%s: %v (empty %v)", pid, err, empty)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d mappings by ioctl, %d in the text:\n%+v\n%+v", pid, len(got), len(want), got, want)
		}
		deleted := false
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s mapping %d: ioctl %+v, text %+v", pid, i, got[i], want[i])
			}
			deleted = deleted || want[i].Deleted
		}
		if pid == "self" && !deleted {
			t.Errorf("the memfd mapping is not among %+v", want)
		}
		if !slices.Equal(reserves, textReserves) {
			t.Errorf("%s: code reserves by ioctl %+v, in the text %+v", pid, reserves, textReserves)
		}
		if pid == "self" && !slices.Contains(textReserves, wantReserve) {
			t.Errorf("the reserve after anonymous code, %+v, is not among %+v", wantReserve, textReserves)
		}
	}
}

// A process gone leaves no address space to list, and says so.
func TestReadExecMappingsOfExitedProcess(t *testing.T) {
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(child.Process.Pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	child.Wait()
	ms, _, empty, err := queryExecMappings(f)
	if err == errNoProcmapQuery {
		t.Skip("this kernel has no PROCMAP_QUERY")
	}
	if err != nil || !(empty || len(ms) == 0) {
		t.Fatalf("an exited process: %d mappings, empty %v, err %v", len(ms), empty, err)
	}
}

// go test ./collector -run '^$' -bench ExecMappings: a python3 process's
// executable mappings, by the text and by the ioctl.
func BenchmarkExecMappings(b *testing.B) {
	child := exec.Command("python3", "-c", "import time, json, decimal; time.sleep(60)")
	if err := child.Start(); err != nil {
		b.Skip(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	path := "/proc/" + strconv.Itoa(child.Process.Pid) + "/maps"
	b.Run("text", func(b *testing.B) {
		for b.Loop() {
			raw, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := parseMaps(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ioctl", func(b *testing.B) {
		for b.Loop() {
			if _, _, _, err := readExecMappings(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}
