package symbolizer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// errKernelAddressesHidden is returned when kallsyms lists only zero
// addresses, which is what the kernel shows to readers without CAP_SYSLOG
// when kernel.kptr_restrict is set.
var errKernelAddressesHidden = errors.New("kernel addresses are hidden (all zero): run as root or with CAP_SYSLOG, or set kernel.kptr_restrict=0")

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

// kallsyms is the kernel's text symbols sorted by address, one per address.
type kallsyms struct {
	syms []kernelSymbol
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

// parseKallsyms reads lines of the form "ffffffff81000000 T _stext" with
// an optional trailing "[module]", keeping text symbols (t, T, w, W; BPF
// programs are listed as "t bpf_prog_... [bpf]").
func parseKallsyms(r io.Reader) (*kallsyms, error) {
	var syms []kernelSymbol
	sawNonZero := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		// "ADDR TYPE NAME" or "ADDR TYPE NAME\t[MODULE]"; split by hand,
		// strings.Fields costs a third of New on 200,000 lines.
		text := sc.Text()
		addrText, rest, ok := strings.Cut(text, " ")
		if !ok || len(rest) < 3 || rest[1] != ' ' {
			continue
		}
		addr, err := strconv.ParseUint(addrText, 16, 64)
		if err != nil {
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
		name, module, _ := strings.Cut(rest[2:], "\t")
		sym := kernelSymbol{addr: addr, name: strings.TrimSpace(name), kind: rest[0]}
		if module = strings.TrimSpace(module); module != "" {
			sym.module = strings.Trim(module, "[]")
		}
		syms = append(syms, sym)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if line > 0 && !sawNonZero {
		return nil, errKernelAddressesHidden
	}
	if len(syms) == 0 {
		return nil, errors.New("no text symbols")
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	// Keep one symbol per address so lookups are deterministic.
	out := syms[:1]
	for _, s := range syms[1:] {
		last := &out[len(out)-1]
		if s.addr != last.addr {
			out = append(out, s)
			continue
		}
		if betterKernelSymbol(s, *last) {
			*last = s
		}
	}
	return &kallsyms{syms: out}, nil
}

// betterKernelSymbol chooses among aliases at one address: global over weak
// over local, then the name with fewer leading underscores (so "_stext"
// loses to the function that starts there). Ties keep the earlier line.
func betterKernelSymbol(a, b kernelSymbol) bool {
	if ra, rb := kernelBindRank(a.kind), kernelBindRank(b.kind); ra != rb {
		return ra > rb
	}
	return leadingUnderscores(a.name) < leadingUnderscores(b.name)
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

func leadingUnderscores(s string) int {
	return len(s) - len(strings.TrimLeft(s, "_"))
}

// lookup returns the symbol that holds addr.
func (k *kallsyms) lookup(addr uint64) (kernelSymbol, bool) {
	i := sort.Search(len(k.syms), func(i int) bool { return k.syms[i].addr > addr }) - 1
	if i < 0 {
		return kernelSymbol{}, false
	}
	s := k.syms[i]
	if addr-s.addr >= maxKernelSymbolBytes {
		return kernelSymbol{}, false
	}
	return s, true
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
