package symbolizer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveLookup is lookup over rows as parsed and sorted, before packing.
func naiveLookup(rows []lineRow, files []string, pc uint64) (string, int64, bool) {
	i := -1
	for j, r := range rows {
		if r.addr <= pc {
			i = j
		}
	}
	if i < 0 || rows[i].line < 0 {
		return "", 0, false
	}
	lt := lineTable{files: files}
	return lt.file(int64(rows[i].file)), int64(rows[i].line), true
}

// TestPackedLinesAnswerAsParsed: dropping rows a lookup cannot land on,
// and packing the rest, changes no answer, packed or wide.
func TestPackedLinesAnswerAsParsed(t *testing.T) {
	files := []string{"a.c", "b.h", "c.h"}
	for _, tc := range []struct {
		name string
		base uint64
		span uint64 // of the addresses
		line int32  // largest line
		wide bool
	}{
		{"packed", 0x401000, 4096, 3000, false},
		{"line past the packed range", 0x401000, 4096, endLine + 5, true},
		{"addresses over 4 GiB apart", 0x1000, 1 << 33, 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.line)))
			var rows []lineRow
			for range 2000 {
				r := lineRow{addr: tc.base + rng.Uint64N(tc.span), file: int32(rng.IntN(len(files)+1)) - 1, line: int32(rng.IntN(4))}
				switch rng.IntN(10) {
				case 0:
					r.line = -1 // a sequence's end
				case 1:
					r.line = tc.line
				}
				rows = append(rows, r)
			}
			slices.SortStableFunc(rows, func(a, b lineRow) int {
				if a.addr != b.addr {
					if a.addr < b.addr {
						return -1
					}
					return 1
				}
				if a.line == -1 && b.line != -1 {
					return -1
				}
				return 0
			})
			parsed := slices.Clone(rows)
			lt := &lineTable{files: files}
			lt.pack(rows)
			if (lt.wide != nil) != tc.wide {
				t.Fatalf("wide: %v, want %v", lt.wide != nil, tc.wide)
			}
			if n := len(lt.addrs) + len(lt.wide); n >= len(parsed) {
				t.Errorf("kept %d of %d rows", n, len(parsed))
			}
			for _, r := range parsed {
				for _, pc := range []uint64{r.addr - 1, r.addr, r.addr + 1, tc.base + tc.span + 7} {
					f, l, ok := lt.lookup(pc)
					wf, wl, wok := naiveLookup(parsed, files, pc)
					if f != wf || l != wl || ok != wok {
						t.Fatalf("pc %#x: %q:%d %v, want %q:%d %v", pc, f, l, ok, wf, wl, wok)
					}
				}
			}
		})
	}
}
