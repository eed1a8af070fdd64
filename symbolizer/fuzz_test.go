package symbolizer

import (
	"bytes"
	"testing"
)

// FuzzELFSymbols feeds arbitrary bytes to the ELF reader and looks up a few
// addresses in whatever it accepted: errors are fine, panics and hangs are
// not. Seeded with the fixtures and truncations of one. Run it with
// -fuzzminimizetime 0: minimizing a 16 KB input byte by byte stalls the
// fuzzer for minutes on every new interesting input.
func FuzzELFSymbols(f *testing.F) {
	for _, name := range []string{"prog-pie", "prog-nopie", "libember.so", "libember-stripped.so", "prog-stripped", "uselib"} {
		f.Add(mustRead(f, name))
	}
	pie := mustRead(f, "prog-pie")
	for _, n := range []int{0, 4, 64, 1024, len(pie) / 2} {
		f.Add(pie[:n])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := parseELF(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, l := range ef.loads {
			for _, off := range []uint64{l.off, l.off + l.filesz/2, l.off + l.filesz - 1} {
				if vaddr, ok := ef.elfAddr(off); ok {
					frames, ok := ef.resolve(vaddr)
					if ok && (len(frames) == 0 || frames[0].Function == "") {
						t.Errorf("resolve(%#x) = %v, ok without a name", vaddr, frames)
					}
				}
			}
		}
	})
}
