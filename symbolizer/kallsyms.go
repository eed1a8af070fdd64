package symbolizer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// errKernelAddressesHidden is returned, with hiddenAdvice, when kallsyms
// lists only zero addresses.
var errKernelAddressesHidden = errors.New("kernel addresses are hidden (all zero)")

// hiddenAdvice says what would show this process the kernel's addresses,
// given the two sysctls that decide it (kallsyms_show_value in the
// kernel): with kptr_restrict 0, perf_event_paranoid 1 or less or
// CAP_SYSLOG; with 1, CAP_SYSLOG only; with 2, nothing.
func hiddenAdvice(kptrRestrict, perfParanoid string) string {
	switch kptrRestrict {
	case "0":
		return fmt.Sprintf("run as root or with CAP_SYSLOG, or set kernel.perf_event_paranoid to 1 or less "+
			"(it is %s; kernel.kptr_restrict is 0 already)", perfParanoid)
	case "1":
		return "run as root or with CAP_SYSLOG, or set kernel.kptr_restrict=0 and kernel.perf_event_paranoid to 1 or less"
	case "2":
		return "kernel.kptr_restrict=2 hides them even from root: set it to 1 (then run as root or with CAP_SYSLOG) or 0"
	}
	return "run as root or with CAP_SYSLOG"
}

func readSysctl(name string) string {
	raw, err := os.ReadFile("/proc/sys/kernel/" + name)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(raw))
}

// maxKernelSymbolBytes bounds how far past its start an address is still
// taken to be inside a kernel symbol. kallsyms gives no sizes, so a symbol
// ends where the next begins; without a bound the last text symbol before
// a gap (core text to modules, a freed init section) would claim it all.
// No kernel function comes near this size.
const maxKernelSymbolBytes = 1 << 20

// kernelSymbol is one text symbol from kallsyms.
type kernelSymbol struct {
	addr   uint64
	name   string
	module string // "" for the core kernel; "bpf" for BPF programs
	kind   byte   // the kallsyms type letter
}

// kallsyms is the kernel's text symbols sorted by address, one per
// address, packed: 120,000 symbols as structs with a string each held
// 12 MB of the daemon's heap, packed they take about a third.
type kallsyms struct {
	addrs   []uint64
	nameEnd []uint32 // symbol i's name is names[nameEnd[i-1]:nameEnd[i]]
	names   string
	module  []uint16 // index into modules
	modules []string // modules[0] is "", the core kernel
}

func (k *kallsyms) len() int { return len(k.addrs) }

// at returns symbol i; its strings are copies, so the frames that outlive
// a reread of kallsyms do not pin the old table.
func (k *kallsyms) at(i int) kernelSymbol {
	var start uint32
	if i > 0 {
		start = k.nameEnd[i-1]
	}
	return kernelSymbol{addr: k.addrs[i], name: strings.Clone(k.names[start:k.nameEnd[i]]), module: k.modules[k.module[i]]}
}

func readKallsyms(path string) (*kallsyms, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	k, err := parseKallsyms(f)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols from %s: %w", path, err)
	}
	return k, nil
}

// rawKernelSymbol is a symbol while kallsyms is parsed: its name is
// names[nameStart:nameStart+nameLen] of the parse buffer.
type rawKernelSymbol struct {
	addr      uint64
	nameStart uint32
	nameLen   uint16
	module    uint16
	kind      byte
}

// maxKernelNames bounds the bytes of symbol names kept (a real kernel has
// about 3 MB), so that a garbage file cannot grow the table without end.
const maxKernelNames = 64 << 20

// parseKallsyms reads lines of the form "ffffffff81000000 T _stext" with
// an optional trailing "[module]", keeping text symbols (t, T, w, W; BPF
// programs are listed as "t bpf_prog_... [bpf]").
func parseKallsyms(r io.Reader) (*kallsyms, error) {
	var syms []rawKernelSymbol
	var names []byte
	modules := []string{""}
	moduleIndex := map[string]uint16{"": 0}
	sawNonZero := false
	br := bufio.NewReaderSize(r, 64<<10)
	line := 0
	for {
		text, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("line %d is longer than %d bytes", line+1, br.Size())
		}
		if len(text) == 0 && err != nil {
			if err == io.EOF {
				break
			}
			return nil, err
		}
		line++
		text = bytes.TrimRight(text, "\n")
		// "ADDR TYPE NAME" or "ADDR TYPE NAME\t[MODULE]"; split by hand,
		// strings.Fields costs a third of New on 200,000 lines.
		addrText, rest, ok := bytes.Cut(text, []byte{' '})
		if !ok || len(rest) < 3 || rest[1] != ' ' {
			continue
		}
		addr, perr := strconv.ParseUint(string(addrText), 16, 64)
		if perr != nil {
			return nil, fmt.Errorf("line %d: bad address %q", line, addrText)
		}
		if addr != 0 {
			sawNonZero = true
		}
		switch rest[0] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		name, module, _ := bytes.Cut(rest[2:], []byte{'\t'})
		name = bytes.TrimSpace(name)
		if len(name) > 0xffff || len(names)+len(name) > maxKernelNames {
			return nil, fmt.Errorf("line %d: symbol names past %d bytes", line, maxKernelNames)
		}
		sym := rawKernelSymbol{addr: addr, nameStart: uint32(len(names)), nameLen: uint16(len(name)), kind: rest[0]}
		names = append(names, name...)
		if module = bytes.Trim(bytes.TrimSpace(module), "[]"); len(module) > 0 {
			i, ok := moduleIndex[string(module)]
			if !ok {
				if len(modules) > 0xffff {
					return nil, fmt.Errorf("line %d: more than %d modules", line, 0xffff)
				}
				i = uint16(len(modules))
				modules = append(modules, string(module))
				moduleIndex[string(module)] = i
			}
			sym.module = i
		}
		syms = append(syms, sym)
		if err != nil {
			break
		}
	}
	if line > 0 && !sawNonZero {
		return nil, fmt.Errorf("%w: %s", errKernelAddressesHidden,
			hiddenAdvice(readSysctl("kptr_restrict"), readSysctl("perf_event_paranoid")))
	}
	if len(syms) == 0 {
		return nil, errors.New("no text symbols")
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	nameOf := func(s rawKernelSymbol) []byte { return names[s.nameStart : s.nameStart+uint32(s.nameLen)] }
	// Keep one symbol per address so lookups are deterministic.
	out := syms[:1]
	for _, s := range syms[1:] {
		last := &out[len(out)-1]
		if s.addr != last.addr {
			out = append(out, s)
			continue
		}
		if betterKernelSymbol(s.kind, nameOf(s), last.kind, nameOf(*last)) {
			*last = s
		}
	}
	k := &kallsyms{
		addrs:   make([]uint64, len(out)),
		nameEnd: make([]uint32, len(out)),
		module:  make([]uint16, len(out)),
		modules: modules,
	}
	var packed strings.Builder
	for i, s := range out {
		packed.Write(nameOf(s))
		k.addrs[i], k.nameEnd[i], k.module[i] = s.addr, uint32(packed.Len()), s.module
	}
	k.names = packed.String()
	return k, nil
}

// betterKernelSymbol chooses among aliases at one address: global over weak
// over local, then the name with fewer leading underscores (so "_stext"
// loses to the function that starts there). Ties keep the earlier line.
func betterKernelSymbol(kindA byte, nameA []byte, kindB byte, nameB []byte) bool {
	if ra, rb := kernelBindRank(kindA), kernelBindRank(kindB); ra != rb {
		return ra > rb
	}
	return leadingUnderscores(nameA) < leadingUnderscores(nameB)
}

func kernelBindRank(kind byte) int {
	switch kind {
	case 'T':
		return 2
	case 'W', 'w':
		return 1
	}
	return 0
}

func leadingUnderscores[S string | []byte](s S) int {
	n := 0
	for n < len(s) && s[n] == '_' {
		n++
	}
	return n
}

// lookup returns the symbol that holds addr.
func (k *kallsyms) lookup(addr uint64) (kernelSymbol, bool) {
	i := sort.Search(len(k.addrs), func(i int) bool { return k.addrs[i] > addr }) - 1
	if i < 0 || addr-k.addrs[i] >= maxKernelSymbolBytes {
		return kernelSymbol{}, false
	}
	return k.at(i), true
}

// frame names a kernel symbol. Module symbols carry their module in the
// display name, as kallsyms prints them ("nft_do_chain [nf_tables]"), and
// keep the bare symbol as SystemName.
func (s kernelSymbol) asFrame() frame {
	if s.module == "" {
		return frame{Function: s.name, SystemName: s.name}
	}
	return frame{Function: s.name + " [" + s.module + "]", SystemName: s.name}
}
