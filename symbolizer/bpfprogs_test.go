package symbolizer

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

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

// TestNextBPFProgramIDFindsLoadedProgram: the raw system call lists a
// program this test loads (the test alone links cilium/ebpf to load it).
func TestNextBPFProgramIDFindsLoadedProgram(t *testing.T) {
	testenv.RequireBPF(t)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load a socket filter: %v", err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatalf("program info: %v", err)
	}
	want, ok := info.ID()
	if !ok {
		t.Skip("kernel does not report program IDs")
	}
	for id := uint32(0); ; {
		next, err := nextBPFProgramID(id)
		if err != nil {
			t.Fatalf("listing ended (%v) without program %d", err, want)
		}
		if next == uint32(want) {
			return
		}
		id = next
	}
}
