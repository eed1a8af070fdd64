package symbolizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

func TestKallsymsFixture(t *testing.T) {
	k, err := readKallsyms("testdata/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr     uint64
		function string // "" = not found
		system   string
	}{
		{0xffffffff80ffffff, "", ""},                     // before the first symbol
		{0xffffffff81000000, "startup_64", "startup_64"}, // aliases: fewest underscores wins
		{0xffffffff81000fff, "startup_64", "startup_64"}, // up to the next symbol
		{0xffffffff81001000, "native_safe_halt", "native_safe_halt"},
		{0xffffffff81001041, "arch_cpu_idle", "arch_cpu_idle"}, // weak symbol
		{0xffffffff81002010, "arch_cpu_idle", "arch_cpu_idle"}, // data symbols are not symbol boundaries
		{0xffffffff81004000, "__x64_sys_read", "__x64_sys_read"},
		{0xffffffff810040ff, "__x64_sys_read", "__x64_sys_read"},
		{0xffffffff81004100, "ksys_read", "ksys_read"},
		{0xffffffff81010123, "schedule", "schedule"},
		{0xffffffff81010200 + maxKernelSymbolBytes, "", ""}, // far past the last core symbol
		{0xffffffffa0000010, "bpf_prog_6deef7357e7b4530_sd_fw_egress [bpf]", "bpf_prog_6deef7357e7b4530_sd_fw_egress"},
		{0xffffffffc0a00004, "nft_do_chain [nf_tables]", "nft_do_chain"},
		{0xffffffffc0a00400, "nft_register_chain_type [nf_tables]", "nft_register_chain_type"},
	}
	for _, tt := range tests {
		sym, ok := k.lookup(tt.addr)
		if tt.function == "" {
			if ok {
				t.Errorf("lookup(%#x) = %q, want not found", tt.addr, sym.name)
			}
			continue
		}
		if !ok {
			t.Errorf("lookup(%#x) not found, want %q", tt.addr, tt.function)
			continue
		}
		if f := sym.asFrame(); f.Function != tt.function || f.SystemName != tt.system {
			t.Errorf("lookup(%#x) = %q/%q, want %q/%q", tt.addr, f.Function, f.SystemName, tt.function, tt.system)
		}
	}
}

func TestKallsymsHidden(t *testing.T) {
	hidden := "0000000000000000 T _text\n0000000000000000 T schedule\n0000000000000000 t nft_do_chain\t[nf_tables]\n"
	path := t.TempDir() + "/kallsyms"
	if err := os.WriteFile(path, []byte(hidden), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{KallsymsPath: path})
	if err == nil {
		t.Fatal("New with hidden kernel addresses succeeded")
	}
	for _, want := range []string{"hidden", "root", "CAP_SYSLOG"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// The advice never asks for a setting that is already made.
func TestHiddenAdvice(t *testing.T) {
	for _, tt := range []struct{ kptr, paranoid, want, not string }{
		{"0", "2", "set kernel.perf_event_paranoid to 1 or less (it is 2; kernel.kptr_restrict is 0 already)", "kptr_restrict=0"},
		{"1", "2", "CAP_SYSLOG, or set kernel.kptr_restrict=0 and kernel.perf_event_paranoid to 1 or less", "it is"},
		{"2", "1", "kernel.kptr_restrict=2 hides them even from root", "perf_event_paranoid"},
	} {
		got := hiddenAdvice(tt.kptr, tt.paranoid)
		if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
			t.Errorf("kptr_restrict=%s perf_event_paranoid=%s: %q", tt.kptr, tt.paranoid, got)
		}
	}
}

func TestKallsymsMalformed(t *testing.T) {
	for name, text := range map[string]string{
		"empty":       "",
		"bad address": "zzzz T foo\n",
		"no text":     "ffffffff81002000 D some_data\n",
	} {
		if _, err := parseKallsyms(strings.NewReader(text)); err == nil {
			t.Errorf("%s: parse succeeded", name)
		}
	}
}

// TestKallsymsReal reads this machine's kernel symbols, which needs root
// (CAP_SYSLOG) to see real addresses.
func TestKallsymsReal(t *testing.T) {
	if os.Geteuid() != 0 {
		reason := "needs root (CAP_SYSLOG) to read kernel addresses from /proc/kallsyms; set CI to fail instead of skip"
		if testenv.InCI() {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.kernel.len(); n < 10000 {
		t.Errorf("only %d kernel text symbols", n)
	}
	// Every kernel has schedule; look it up by name, then by an address
	// inside it.
	var addr uint64
	for i := range s.kernel.len() {
		if sym := s.kernel.at(i); sym.name == "schedule" && sym.module == "" {
			addr = sym.addr
		}
	}
	if addr == 0 {
		t.Fatal("no schedule in /proc/kallsyms")
	}
	if f := s.kernelFrames(addr + 1); f[0].Function != "schedule" {
		t.Errorf("kernel address schedule+1 named %q", f[0].Function)
	}
}

// TestKallsymsReload checks that BPF programs and trampolines loaded after
// the symbolizer started are named, as the kernel names them, once
// kallsyms is reread.
func TestKallsymsReload(t *testing.T) {
	orig, err := os.ReadFile("testdata/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kallsyms")
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{KallsymsPath: path})
	if err != nil {
		t.Fatal(err)
	}
	more := "ffffffffa0001000 t bpf_trampoline_6442451234\t[bpf]\n" +
		"ffffffffa0002000 t bpf_prog_0123456789abcdef_do_sample\t[bpf]\n"
	if err := os.WriteFile(path, append(orig, more...), 0o644); err != nil {
		t.Fatal(err)
	}
	s.kallsymsMaxAge = 0
	s.bpfPrograms = func() (uint64, bool) { return s.bpfSeen + 1, true } // a program was loaded
	p, err := s.Profile(&model.Batch{
		PeriodNanos: 1,
		Samples:     []model.Sample{{PID: 1, TID: 1, Count: 1, Kernel: []uint64{0xffffffffa0002010, 0xffffffffa0001020}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, loc := range p.Sample[0].Location {
		got = append(got, loc.Line[0].Function.Name+" / "+loc.Line[0].Function.SystemName)
	}
	want := []string{
		"bpf_prog_0123456789abcdef_do_sample [bpf] / bpf_prog_0123456789abcdef_do_sample",
		"bpf_trampoline_6442451234 [bpf] / bpf_trampoline_6442451234",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestKallsymsNoRereadForKnownPrograms: an address in a BPF program that
// kallsyms named rereads it only when programs were loaded or unloaded
// since.
func TestKallsymsNoRereadForKnownPrograms(t *testing.T) {
	orig, err := os.ReadFile("testdata/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kallsyms")
	write := func(name string) {
		line := "ffffffffa0002000 t bpf_prog_0123456789abcdef_" + name + "\t[bpf]\n"
		if err := os.WriteFile(path, append(slices.Clone(orig), line...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("before")
	s, err := New(Options{KallsymsPath: path})
	if err != nil {
		t.Fatal(err)
	}
	s.kallsymsMaxAge = 0
	programs := uint64(1)
	s.bpfPrograms = func() (uint64, bool) { return programs, true }
	s.bpfSeen = 1
	write("after")
	name := func() string { return s.kernelFrames(0xffffffffa0002010)[0].Function }
	if got := name(); got != "bpf_prog_0123456789abcdef_before [bpf]" {
		t.Errorf("same programs: %q, want the name read at start", got)
	}
	programs = 2
	if got := name(); got != "bpf_prog_0123456789abcdef_after [bpf]" {
		t.Errorf("programs changed: %q, want the reread name", got)
	}
}
