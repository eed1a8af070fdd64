package symbolizer

import (
	"debug/dwarf"
	"debug/elf"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ember-profiler/ember/model"
)

// BenchmarkLookupWarm measures naming one user address whose file is
// parsed and whose result is cached: the steady state of a daemon.
func BenchmarkLookupWarm(b *testing.B) {
	s := newTestSymbolizer(b)
	ms := loadAt(b, "prog-pie", pieBase)
	m := &ms[0]
	key, err := statKey(m.File)
	if err != nil {
		b.Fatal(err)
	}
	v, _ := fixtureSymbol(b, "prog-pie", "ember_middle")
	addr := pieBase - fixtureFirstLoad(b, "prog-pie") + v + 4
	if f, _ := s.userFrames(key, nil, nil, m, addr, addr-1); f[0].Function != "ember_middle" {
		b.Fatalf("warm-up named %q", f[0].Function)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.userFrames(key, nil, nil, m, addr, addr-1)
	}
}

// BenchmarkProfile measures a whole batch from warm caches: 1,000 samples
// of 12 frames (3 kernel, 9 user) over a PIE and a shared library.
func BenchmarkProfile(b *testing.B) {
	s := newTestSymbolizer(b)
	pie := loadAt(b, "prog-pie", pieBase)
	lib := loadAt(b, "libember.so", libBase)
	proc := process(100, pie, lib)
	var samples []model.Sample
	for i := range 1000 {
		var user []uint64
		for j := range 9 {
			m := pie[0]
			if j%2 == 1 {
				m = lib[0]
			}
			user = append(user, m.Start+uint64((i*7+j*13)%0x160))
		}
		samples = append(samples, model.Sample{
			PID: 100, TID: uint32(100 + i%8), Comm: "prog", Count: uint64(1 + i%5),
			Kernel: []uint64{0xffffffff81004104 + uint64(i%16), 0xffffffff81004010, 0xffffffff81003020},
			User:   user,
		})
	}
	batch := &model.Batch{
		PeriodNanos: 10101010,
		Samples:     samples,
		Processes:   map[model.ProcessKey]*model.Process{{PID: 100}: proc},
	}
	if _, err := s.Profile(batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Profile(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// largeBinary is a 110 MB shared object present wherever clang 14 is
// installed from Debian; the cold and warm benchmarks below name 1,000
// addresses spread evenly over its 50 MB of code.
const largeBinary = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"

// largeBinaryBatch maps largeBinary at libBase and returns a batch of 1,000
// one-frame samples over its .text, and the mapping.
func largeBinaryBatch(b *testing.B) (*model.Batch, *model.Mapping) {
	b.Helper()
	if _, err := os.Stat(largeBinary); err != nil {
		b.Skipf("needs %s (Debian's libllvm14, installed with clang-14): %v", largeBinary, err)
	}
	return spreadBatch(b, largeBinary, libBase)
}

// spreadBatch maps a file at base and returns a batch of 1,000 one-frame
// samples spread evenly over its .text, and the mapping.
func spreadBatch(b *testing.B, path string, base uint64) (*model.Batch, *model.Mapping) {
	b.Helper()
	ms := loadPathAt(b, path, path, base)
	ef, err := elf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer ef.Close()
	text := ef.Section(".text")
	bias := base - firstLoad(b, path)
	if ef.Type == elf.ET_EXEC {
		bias = 0
	}
	proc := process(100, ms)
	var samples []model.Sample
	const n = 1000
	for i := range n {
		addr := bias + text.Addr + uint64(i)*(text.Size/n)
		samples = append(samples, model.Sample{PID: 100, TID: 100, Comm: "bench", Count: 1, User: []uint64{addr}})
	}
	m := proc.FindMapping(samples[0].User[0])
	if m == nil {
		b.Fatal("text not mapped")
	}
	return &model.Batch{
		PeriodNanos: 10101010,
		Samples:     samples,
		Processes:   map[model.ProcessKey]*model.Process{{PID: 100}: proc},
	}, m
}

// BenchmarkColdLargeBinary measures a fresh symbolizer naming 1,000
// addresses of largeBinary: from the first address to the named profile,
// parse included. It reports the heap in use once the profile is built
// (the symbolizer's tables live, garbage collected first) and how many
// frames stayed unnamed.
func BenchmarkColdLargeBinary(b *testing.B) {
	batch, _ := largeBinaryBatch(b)
	var heapMiB float64
	var unnamed int
	for b.Loop() {
		s := newTestSymbolizer(b)
		p, err := s.Profile(batch)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		unnamed = 0
		for _, smp := range p.Sample {
			if strings.HasPrefix(smp.Location[0].Line[0].Function.Name, "[") {
				unnamed++
			}
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapMiB = float64(ms.HeapInuse) / (1 << 20)
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(heapMiB, "heap-MiB")
	b.ReportMetric(float64(unnamed), "unnamed")
}

// BenchmarkWarmLargeBinary measures naming one address of largeBinary
// when its tables are parsed and the address was named before: the
// steady state of the daemon. lookups/s is 1e9 / ns/op.
func BenchmarkWarmLargeBinary(b *testing.B) {
	batch, m := largeBinaryBatch(b)
	s := newTestSymbolizer(b)
	if _, err := s.Profile(batch); err != nil {
		b.Fatal(err)
	}
	key, err := statKey(m.File)
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]uint64, len(batch.Samples))
	for i, smp := range batch.Samples {
		addrs[i] = smp.User[0]
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := addrs[i%len(addrs)]
		s.userFrames(key, nil, nil, m, a, a)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkColdDWARF measures a fresh symbolizer naming every byte of
// alpha in the inline fixture (DWARF lines and inlined calls): the cost
// of indexing units and reading one unit's functions and lines.
func BenchmarkColdDWARF(b *testing.B) {
	path := symbolsFixture(b, "inline")
	start, end := symbolRange(b, path, "alpha")
	for b.Loop() {
		s := newTestSymbolizer(b)
		m, bias := mappedFixture(b, "inline")
		for a := start; a < end; a++ {
			framesAt(b, s, m, a+bias)
		}
	}
}

// BenchmarkColdDWARFLarge is BenchmarkColdLargeBinary for a binary with
// DWARF: this test binary itself (Go, about 10 MB, a few hundred compile
// units), 1,000 addresses over its code, with lines and inlined calls.
// It reports how many of the addresses got a source line.
func BenchmarkColdDWARFLarge(b *testing.B) {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	if f, err := elf.Open(self); err != nil || f.Section(".debug_info") == nil {
		b.Skip("this test binary has no DWARF: go test strips it unless the binary is built with go test -c")
	}
	batch, _ := spreadBatch(b, self, 0)
	var withLines int
	for b.Loop() {
		s := newTestSymbolizer(b)
		p, err := s.Profile(batch)
		if err != nil {
			b.Fatal(err)
		}
		withLines = 0
		for _, smp := range p.Sample {
			if smp.Location[0].Line[0].Line > 0 {
				withLines++
			}
		}
	}
	b.ReportMetric(float64(withLines), "with-lines")
}

// BenchmarkParseSymbolTables parses programs nobody here wrote whose
// symbol tables are large (node: 110,000 symbols and 7.5 MB of names), as
// the symbolizer does on a cache miss, and reports what one parse keeps on
// the heap (held-MiB, the resolvers' own account) besides the time and
// allocation of the parse.
func BenchmarkParseSymbolTables(b *testing.B) {
	for _, path := range []string{"/usr/bin/node", "/usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so"} {
		b.Run(filepath.Base(path), func(b *testing.B) {
			f, err := os.Open(path)
			if err != nil {
				b.Skipf("%s: %v", path, err)
			}
			defer f.Close()
			var held int64
			b.ReportAllocs()
			for b.Loop() {
				ef, err := parseELF(f)
				if err != nil {
					b.Fatal(err)
				}
				held = ef.sizeBytes()
			}
			b.ReportMetric(float64(held)/(1<<20), "held-MiB")
		})
	}
}

// BenchmarkLineTables parses every compile unit's line table of the file
// EMBER_BENCH_ELF names (a large C library with DWARF, e.g. a pyenv
// libpython), and reports the rows the program has, the rows kept, and
// the bytes the tables hold against 16 a row as parsed.
func BenchmarkLineTables(b *testing.B) {
	path := os.Getenv("EMBER_BENCH_ELF")
	if path == "" {
		b.Skip("set EMBER_BENCH_ELF to a file with DWARF line tables")
	}
	f, err := elf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d, err := f.DWARF()
	if err != nil {
		b.Fatal(err)
	}
	line, err := f.Section(".debug_line").Data()
	if err != nil {
		b.Fatal(err)
	}
	var units []*dwarf.Entry
	for rd := d.Reader(); ; {
		e, err := rd.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit {
			units = append(units, e)
		}
		rd.SkipChildren()
	}
	var parsed, kept, held int64
	for b.Loop() {
		parsed, kept, held = 0, 0, 0
		for _, cu := range units {
			off, ok := cu.Val(dwarf.AttrStmtList).(int64)
			if !ok {
				continue
			}
			lr, err := d.LineReader(cu)
			if err != nil || lr == nil {
				continue
			}
			var e dwarf.LineEntry
			for lr.Next(&e) == nil {
				parsed++
			}
			lt, err := parseLineTable(d, cu, line, off)
			if err != nil {
				continue
			}
			kept += int64(len(lt.addrs) + len(lt.wide))
			held += lt.sizeBytes()
		}
	}
	b.ReportMetric(float64(parsed), "rows")
	b.ReportMetric(float64(kept), "kept")
	b.ReportMetric(float64(held)/(1<<20), "MiB")
	b.ReportMetric(float64(parsed*16)/(1<<20), "MiB@16B")
}
