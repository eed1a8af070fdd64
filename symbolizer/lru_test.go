package symbolizer

import (
	"testing"
)

func TestLRU(t *testing.T) {
	c := newLRU[int, string](2)
	c.add(1, "one")
	c.add(2, "two")
	if v, ok := c.get(1); !ok || v != "one" {
		t.Fatalf("get(1) = %q, %v", v, ok)
	}
	c.add(3, "three") // evicts 2, the least recently used
	if _, ok := c.get(2); ok {
		t.Error("2 survived eviction")
	}
	for _, k := range []int{1, 3} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%d was evicted", k)
		}
	}
	c.add(3, "THREE")
	if v, _ := c.get(3); v != "THREE" || c.len() != 2 {
		t.Errorf("update: get(3) = %q, len %d", v, c.len())
	}
}

// TestFileCacheBound checks that MaxCachedFiles bounds the parsed files
// kept, and that a file evicted and seen again still resolves.
func TestFileCacheBound(t *testing.T) {
	s, err := New(Options{KallsymsPath: "testdata/kallsyms", MaxCachedFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	pie := loadAt(t, "prog-pie", pieBase)
	lib := loadAt(t, "libember.so", libBase)
	proc := process(1, pie, lib)
	leaf, _ := fixtureSymbol(t, "prog-pie", "ember_leaf")
	compute, _ := fixtureSymbol(t, "libember.so", "ember_lib_compute")
	pieAddr := pieBase - fixtureFirstLoad(t, "prog-pie") + leaf
	libAddr := libBase - fixtureFirstLoad(t, "libember.so") + compute
	for range 3 {
		got := userNames(t, s, proc, pieAddr, libAddr+1)
		if got[0] != "ember_leaf" || got[1] != "ember_lib_compute" {
			t.Fatalf("frames %q", got)
		}
		if n := s.files.len(); n != 1 {
			t.Fatalf("%d files cached, want 1", n)
		}
	}
}
