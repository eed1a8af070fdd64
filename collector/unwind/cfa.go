package unwind

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// x86-64 DWARF register numbers.
const (
	regRBP = 6
	regRSP = 7
	regRA  = 16
)

// maxRowsPerFDE bounds the rows one FDE may produce: real functions have a
// few dozen; a hostile FDE could otherwise ask for billions.
const maxRowsPerFDE = 1 << 16

// regRule is the part of a DWARF register rule the unwinder can use.
type regRule struct {
	kind   uint8 // ruleSame, ruleOffset, ruleUndefined, ruleOther
	offset int64
}

const (
	ruleSame uint8 = iota
	ruleOffset
	ruleUndefined
	ruleOther
)

type cfaRule struct {
	kind   CFAKind // CFASP, CFAFP, CFAPLT*, CFAUnsupported
	offset int64
}

type cfaState struct {
	cfa     cfaRule
	rbp, ra regRule
}

// errUnsupportedOp ends an FDE's rows: what follows cannot be interpreted.
var errUnsupportedOp = errors.New("unsupported CFA instruction")

// rowBuilder turns FDEs into rows, reusing its state from one FDE to the
// next: libLLVM has about 100,000 of them.
type rowBuilder struct {
	ex    executor
	rows  []Row
	start int    // first row of the current FDE
	end   uint64 // the current FDE's end
	base  uint64
}

// add runs an FDE's CIE and FDE programs and appends a row at each address
// where the rule changes, then a gap row at the FDE's end.
func (b *rowBuilder) add(fde *frame.FrameDescriptionEntry) {
	cie := fde.CIE
	if cie == nil || fde.Begin() < b.base || fde.End()-b.base > math.MaxUint32 {
		return
	}
	ex := &b.ex
	*ex = executor{
		codeAlign: cie.CodeAlignmentFactor,
		dataAlign: cie.DataAlignmentFactor,
		raReg:     cie.ReturnAddressRegister,
		saved:     ex.saved[:0],
	}
	ex.state = cfaState{cfa: cfaRule{kind: CFAUnsupported}, ra: regRule{kind: ruleOther}}
	if ex.raReg == regRA {
		ex.state.ra = regRule{kind: ruleSame}
	}
	b.end = fde.End()
	// The CIE program sets the initial state; restore ops go back to it.
	if err := ex.run(cie.InitialInstructions, nil); err != nil {
		b.rows = append(b.rows, makeRow(uint32(fde.Begin()-b.base), CFAUnsupported, 0, RBPUnknown, 0),
			makeRow(uint32(fde.End()-b.base), CFAGap, 0, RBPSame, 0))
		return
	}
	ex.initial = ex.state
	ex.loc = fde.Begin()
	b.start = len(b.rows)
	b.emit()
	err := ex.run(fde.Instructions, b)
	if err == nil {
		b.emit() // the rule after the last advance holds to the FDE's end
	} else if ex.loc < fde.End() {
		// From where the program stopped making sense, say so.
		r := makeRow(uint32(ex.loc-b.base), CFAUnsupported, 0, RBPUnknown, 0)
		if n := len(b.rows); n > b.start && b.rows[n-1].PC == r.PC {
			b.rows[n-1] = r
		} else {
			b.rows = append(b.rows, r)
		}
	}
	b.rows = append(b.rows, makeRow(uint32(fde.End()-b.base), CFAGap, 0, RBPSame, 0))
}

// emit records the rule that holds at the executor's location.
func (b *rowBuilder) emit() {
	ex := &b.ex
	if ex.loc >= b.end {
		return
	}
	r := ex.state.row(uint32(ex.loc - b.base))
	n := len(b.rows)
	switch {
	case n > b.start && b.rows[n-1].PC == r.PC:
		b.rows[n-1] = r
	case n > b.start && sameRule(b.rows[n-1], r):
	case n-b.start < maxRowsPerFDE:
		b.rows = append(b.rows, r)
	}
}

func sameRule(a, b Row) bool {
	return a.Kind == b.Kind && a.CFAOffset == b.CFAOffset && a.RBPOffset == b.RBPOffset
}

// row encodes the state, marking what does not fit the compact form.
func (s cfaState) row(pc uint32) Row {
	if s.ra.kind == ruleUndefined {
		return makeRow(pc, CFAEnd, 0, RBPSame, 0)
	}
	cfa, cfaOff := s.cfa.kind, int32(0)
	switch {
	case s.ra.kind != ruleOffset || s.ra.offset != -8:
		// x86-64 code always saves the return address right below the CFA.
		cfa = CFAUnsupported
	case cfa == CFASP || cfa == CFAFP || cfa == CFAPLT11 || cfa == CFAPLT10:
		if s.cfa.offset < math.MinInt32 || s.cfa.offset > math.MaxInt32 {
			cfa = CFAUnsupported
		} else {
			cfaOff = int32(s.cfa.offset)
		}
	}
	rbp, rbpOff := RBPUnknown, int8(0)
	switch s.rbp.kind {
	case ruleSame:
		rbp = RBPSame
	case ruleOffset:
		if s.rbp.offset%8 == 0 && s.rbp.offset/8 >= math.MinInt8 && s.rbp.offset/8 <= math.MaxInt8 {
			rbp, rbpOff = RBPAtCFA, int8(s.rbp.offset/8)
		}
	}
	if cfa == CFAUnsupported {
		cfaOff = 0
	}
	return makeRow(pc, cfa, cfaOff, rbp, rbpOff)
}

type executor struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	loc       uint64
	state     cfaState
	initial   cfaState
	saved     []cfaState
}

// pltExpression reports whether a DW_CFA_def_cfa_expression block is the
// one linkers emit for 16-byte PLT entries:
// rsp + 8 + ((rip & 15) >= N) << 3, and returns N's kind.
func pltExpression(block []byte) (CFAKind, bool) {
	// DW_OP_breg7 8; DW_OP_breg16 0; DW_OP_lit15; DW_OP_and; DW_OP_litN;
	// DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus
	if len(block) != 11 || !bytes.Equal(block[:6], []byte{0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a}) ||
		!bytes.Equal(block[7:], []byte{0x2a, 0x33, 0x24, 0x22}) {
		return 0, false
	}
	switch block[6] {
	case 0x30 + 11:
		return CFAPLT11, true
	case 0x30 + 10:
		return CFAPLT10, true
	}
	return 0, false
}

// run interprets a CFA program; b (when not nil) is told before the
// location moves, so it sees the rule that holds up to the new location.
func (ex *executor) run(prog []byte, b *rowBuilder) error {
	r := reader{b: prog}
	for r.more() {
		op := r.u8()
		switch op >> 6 {
		case 1: // DW_CFA_advance_loc
			ex.advance(uint64(op&0x3f), b)
			continue
		case 2: // DW_CFA_offset
			ex.setReg(uint64(op&0x3f), regRule{kind: ruleOffset, offset: int64(r.uleb()) * ex.dataAlign})
			continue
		case 3: // DW_CFA_restore
			ex.restore(uint64(op & 0x3f))
			continue
		}
		switch op {
		case 0x00: // nop
		case 0x01: // set_loc: needs the CIE's pointer encoding, which delve keeps private
			return errUnsupportedOp
		case 0x02:
			ex.advance(uint64(r.u8()), b)
		case 0x03:
			ex.advance(uint64(r.u16()), b)
		case 0x04:
			ex.advance(uint64(r.u32()), b)
		case 0x05: // offset_extended
			reg := r.uleb()
			ex.setReg(reg, regRule{kind: ruleOffset, offset: int64(r.uleb()) * ex.dataAlign})
		case 0x06: // restore_extended
			ex.restore(r.uleb())
		case 0x07: // undefined
			ex.setReg(r.uleb(), regRule{kind: ruleUndefined})
		case 0x08: // same_value
			ex.setReg(r.uleb(), regRule{kind: ruleSame})
		case 0x09: // register
			reg := r.uleb()
			r.uleb()
			ex.setReg(reg, regRule{kind: ruleOther})
		case 0x0a: // remember_state
			if len(ex.saved) > 64 {
				return errUnsupportedOp
			}
			ex.saved = append(ex.saved, ex.state)
		case 0x0b: // restore_state
			if len(ex.saved) == 0 {
				return errUnsupportedOp
			}
			ex.state = ex.saved[len(ex.saved)-1]
			ex.saved = ex.saved[:len(ex.saved)-1]
		case 0x0c: // def_cfa
			reg := r.uleb()
			ex.defCFA(reg, int64(r.uleb()))
		case 0x0d: // def_cfa_register
			ex.defCFA(r.uleb(), ex.state.cfa.offset)
		case 0x0e: // def_cfa_offset
			ex.state.cfa.offset = int64(r.uleb())
		case 0x0f: // def_cfa_expression
			block := r.block()
			if kind, ok := pltExpression(block); ok {
				ex.state.cfa = cfaRule{kind: kind, offset: 8}
			} else {
				ex.state.cfa = cfaRule{kind: CFAUnsupported}
			}
		case 0x10: // expression
			reg := r.uleb()
			r.block()
			ex.setReg(reg, regRule{kind: ruleOther})
		case 0x11: // offset_extended_sf
			reg := r.uleb()
			ex.setReg(reg, regRule{kind: ruleOffset, offset: r.sleb() * ex.dataAlign})
		case 0x12: // def_cfa_sf
			reg := r.uleb()
			ex.defCFA(reg, r.sleb()*ex.dataAlign)
		case 0x13: // def_cfa_offset_sf
			ex.state.cfa.offset = r.sleb() * ex.dataAlign
		case 0x14: // val_offset
			reg := r.uleb()
			r.uleb()
			ex.setReg(reg, regRule{kind: ruleOther})
		case 0x15: // val_offset_sf
			reg := r.uleb()
			r.sleb()
			ex.setReg(reg, regRule{kind: ruleOther})
		case 0x16: // val_expression
			reg := r.uleb()
			r.block()
			ex.setReg(reg, regRule{kind: ruleOther})
		case 0x2e: // GNU_args_size
			r.uleb()
		case 0x2f: // GNU_negative_offset_extended
			reg := r.uleb()
			ex.setReg(reg, regRule{kind: ruleOffset, offset: -int64(r.uleb()) * ex.dataAlign})
		default:
			return fmt.Errorf("%w %#x", errUnsupportedOp, op)
		}
		if r.err {
			return errUnsupportedOp
		}
	}
	if r.err {
		return errUnsupportedOp
	}
	return nil
}

func (ex *executor) advance(delta uint64, b *rowBuilder) {
	if b == nil {
		return
	}
	b.emit()
	ex.loc += delta * ex.codeAlign
}

func (ex *executor) defCFA(reg uint64, offset int64) {
	switch reg {
	case regRSP:
		ex.state.cfa = cfaRule{kind: CFASP, offset: offset}
	case regRBP:
		ex.state.cfa = cfaRule{kind: CFAFP, offset: offset}
	default:
		ex.state.cfa = cfaRule{kind: CFAUnsupported}
	}
}

func (ex *executor) setReg(reg uint64, rule regRule) {
	switch reg {
	case regRBP:
		ex.state.rbp = rule
	case ex.raReg:
		ex.state.ra = rule
	}
}

func (ex *executor) restore(reg uint64) {
	switch reg {
	case regRBP:
		ex.state.rbp = ex.initial.rbp
	case ex.raReg:
		ex.state.ra = ex.initial.ra
	}
}

// reader decodes CFA operands; running off the end sets err instead of
// panicking.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) more() bool { return len(r.b) > 0 && !r.err }

func (r *reader) take(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.err = true
		r.b = nil
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) uleb() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b := r.take(1)
		if b == nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(b[0]&0x7f) << shift
		}
		if b[0]&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) sleb() int64 {
	var v int64
	var shift uint
	for {
		b := r.take(1)
		if b == nil {
			return 0
		}
		if shift < 64 {
			v |= int64(b[0]&0x7f) << shift
		}
		shift += 7
		if b[0]&0x80 == 0 {
			if shift < 64 && b[0]&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

func (r *reader) block() []byte {
	n := r.uleb()
	if n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	return r.take(int(n))
}
