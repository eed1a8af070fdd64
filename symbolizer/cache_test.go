package symbolizer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ember-profiler/ember/model"
)

// TestUnknownNamesNotShared checks that the address cache, shared by every
// mapping of one file, does not leak one mapping's unknown-frame name
// (path, unadjusted offset) into another's.
func TestUnknownNamesNotShared(t *testing.T) {
	s := newTestSymbolizer(t)
	host := loadAt(t, "prog-stripped", pieBase)
	container := loadAt(t, "prog-stripped", pieBase)
	for i := range container {
		container[i].Path = "/var/lib/containers/app/bin/server"
	}
	start := host[0].Start
	// The leaf at start+1 and the return address start+2 are both looked
	// up at start+1.
	got := userNames(t, s, process(1, host), start+1, start+2)
	got = append(got, userNames(t, s, process(2, container), start+1)...)
	off := host[0].Offset
	want := []string{
		fmt.Sprintf("[unknown in prog-stripped+%#x]", off+1),
		fmt.Sprintf("[unknown in prog-stripped+%#x]", off+2),
		fmt.Sprintf("[unknown in server+%#x]", off+1),
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestKernelReturnAddress checks that non-leaf kernel addresses are looked
// up at addr-1: a return to the first byte of ksys_read comes from a call
// at the end of __x64_sys_read.
func TestKernelReturnAddress(t *testing.T) {
	p, err := newTestSymbolizer(t).Profile(&model.Batch{
		PeriodNanos: 1,
		Samples: []model.Sample{
			{PID: 1, TID: 1, Count: 1, Kernel: []uint64{0xffffffff81010000, 0xffffffff81004100}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, loc := range p.Sample[0].Location {
		got = append(got, loc.Line[0].Function.Name)
	}
	if want := []string{"schedule", "__x64_sys_read"}; !slices.Equal(got, want) {
		t.Errorf("kernel frames %q, want %q", got, want)
	}
}

// countingHandler counts log records at or above Warn.
type countingHandler struct{ warnings atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warnings.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestBadFileLoggedOnce checks that an unreadable file is reported once,
// not once per address or per batch.
func TestBadFileLoggedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "libbad.so")
	if err := os.WriteFile(path, []byte("\x7fELF but not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newTestSymbolizer(t)
	h := &countingHandler{}
	s.log = slog.New(h)
	proc := process(1, []model.Mapping{{Start: 0x400000, Limit: 0x401000, Path: "/lib/libbad.so", File: f}})
	for range 3 {
		got := userNames(t, s, proc, 0x400010, 0x400020, 0x400030)
		if got[0] != "[unknown in libbad.so+0x10]" {
			t.Fatalf("frame %q", got[0])
		}
	}
	if n := h.warnings.Load(); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}

// TestTablesSharedByBuildID checks that two copies of one file (another
// inode, as in two containers) share one parse through their build ID,
// and that the counters say so.
func TestTablesSharedByBuildID(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtureDir, "prog-pie"))
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "prog-pie")
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := newTestSymbolizer(t)
	host := loadAt(t, "prog-pie", pieBase)
	container := loadPathAt(t, copyPath, "/app/prog-pie", pieBase)
	v, _ := fixtureSymbol(t, "prog-pie", "ember_leaf")
	addr := pieBase - fixtureFirstLoad(t, "prog-pie") + v
	for _, proc := range []*model.Process{process(1, host), process(2, container), process(1, host)} {
		if got := userNames(t, s, proc, addr); got[0] != "ember_leaf" {
			t.Fatalf("pid %d: %q", proc.PID, got[0])
		}
	}
	// The copy finds the parse by build ID; the host's second lookup is
	// answered from the address cache before any table is looked for.
	st := s.Stats()
	if st.FileMisses != 1 || st.FileHits != 1 || st.Files != 1 {
		t.Errorf("file misses %d, hits %d, files %d; want 1 parse reused once", st.FileMisses, st.FileHits, st.Files)
	}
	if st.Misses != 1 || st.Hits != 2 {
		t.Errorf("address misses %d, hits %d; want one lookup answered twice from the cache", st.Misses, st.Hits)
	}
	if st.Bytes <= 0 {
		t.Errorf("bytes %d", st.Bytes)
	}
}

// TestCacheByteBudget checks that MaxCacheBytes evicts parsed tables,
// that addresses already named are answered without parsing their evicted
// file again, and that a new address in an evicted file parses it again.
func TestCacheByteBudget(t *testing.T) {
	// An eighth of it, the address cache's share, holds the three
	// addresses; the rest is less than two parses.
	s, err := New(Options{KallsymsPath: "testdata/kallsyms", MaxCacheBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s.log = slog.New(slog.DiscardHandler)
	names := []string{"prog-pie", "prog-nopie", "libember.so"}
	for round, offset := range []uint64{1, 1, 2} {
		for _, name := range names {
			base := uint64(pieBase)
			if name == "prog-nopie" {
				base = 0
			}
			ms := loadAt(t, name, base)
			if got := userNames(t, s, process(1, ms), ms[0].Start+offset); strings.HasPrefix(got[0], "[") {
				t.Errorf("round %d, %s: %q", round, name, got[0])
			}
		}
		if st := s.Stats(); round == 1 && (st.FileMisses != 3 || st.Hits != 3) {
			t.Errorf("round 1: %d parses, %d address hits; want the 3 addresses answered from the cache", st.FileMisses, st.Hits)
		}
	}
	st := s.Stats()
	if st.Files != 1 || st.Evictions < 5 || st.FileMisses != 6 {
		t.Errorf("files %d, evictions %d, parses %d; want every parse evicted by the next", st.Files, st.Evictions, st.FileMisses)
	}
}

// TestRicherCopyReplacesTable checks that a stripped copy parsed first
// does not hide the symbols of a full copy with the same build ID, and
// that the stripped copy is named from the full one's parse afterwards.
func TestRicherCopyReplacesTable(t *testing.T) {
	s := newTestSymbolizer(t)
	stripped := process(1, loadAt(t, "prog-stripped", pieBase))
	full := process(2, loadAt(t, "prog-pie", pieBase))
	v, _ := fixtureSymbol(t, "prog-pie", "ember_leaf")
	addr := pieBase - fixtureFirstLoad(t, "prog-pie") + v
	if got := userNames(t, s, stripped, addr); !strings.HasPrefix(got[0], "[unknown in prog-stripped") {
		t.Fatalf("stripped copy first: %q", got[0])
	}
	for _, proc := range []*model.Process{full, stripped} {
		if got := userNames(t, s, proc, addr); got[0] != "ember_leaf" {
			t.Errorf("pid %d: %q, want ember_leaf", proc.PID, got[0])
		}
	}
	if st := s.Stats(); st.Files != 1 {
		t.Errorf("%d parses kept, want the full one only", st.Files)
	}
}

// Stats answers while a batch is being named: /metrics must not wait for
// naming, which takes seconds on a busy host.
func TestStatsDoNotWaitForNaming(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock() // as Profile holds it for a whole batch
	defer s.mu.Unlock()
	done := make(chan CacheStats, 1)
	go func() { done <- s.Stats() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Stats waited for the batch being named")
	}
}
