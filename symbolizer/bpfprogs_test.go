package symbolizer

import (
	"testing"

	"github.com/ember-profiler/ember/internal/testenv"
)

// TestLoadedBPFPrograms: as root the programs can be listed and the
// fingerprint is stable while nothing is loaded or unloaded.
func TestLoadedBPFPrograms(t *testing.T) {
	testenv.RequireRoot(t) // listing BPF programs needs CAP_SYS_ADMIN
	a, okA := loadedBPFPrograms()
	b, okB := loadedBPFPrograms()
	if !okA || !okB {
		t.Fatal("cannot list BPF programs as root")
	}
	if a != b {
		t.Logf("programs changed between two listings (%x, %x): another process loads BPF", a, b)
	}
}
