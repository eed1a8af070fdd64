package symbolizer

import (
	"testing"

	"github.com/ember-profiler/ember/collector"
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
	if f, _ := s.userFrames(key, nil, m, addr, addr-1); f[0].Function != "ember_middle" {
		b.Fatalf("warm-up named %q", f[0].Function)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.userFrames(key, nil, m, addr, addr-1)
	}
}

// BenchmarkProfile measures a whole batch from warm caches: 1,000 samples
// of 12 frames (3 kernel, 9 user) over a PIE and a shared library.
func BenchmarkProfile(b *testing.B) {
	s := newTestSymbolizer(b)
	pie := loadAt(b, "prog-pie", pieBase)
	lib := loadAt(b, "libember.so", libBase)
	proc := process(100, pie, lib)
	var samples []collector.Sample
	for i := range 1000 {
		var user []uint64
		for j := range 9 {
			m := pie[0]
			if j%2 == 1 {
				m = lib[0]
			}
			user = append(user, m.Start+uint64((i*7+j*13)%0x160))
		}
		samples = append(samples, collector.Sample{
			PID: 100, TID: uint32(100 + i%8), Comm: "prog", Count: uint64(1 + i%5),
			Kernel: []uint64{0xffffffff81004104 + uint64(i%16), 0xffffffff81004010, 0xffffffff81003020},
			User:   user,
		})
	}
	batch := &collector.Batch{
		PeriodNanos: 10101010,
		Samples:     samples,
		Processes:   map[collector.ProcessKey]*collector.Process{{PID: 100}: proc},
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
