package python

import (
	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// The frame word the walker records (sampler's enum py_layout).
const (
	wordMark    = uint64(1) << bpf.SamplerPyLayoutPY_WORD_MARK
	wordRunEnd  = uint64(1) << bpf.SamplerPyLayoutPY_WORD_RUN_END
	codeBits    = bpf.SamplerPyLayoutPY_WORD_CODE_BITS
	offsetBits  = bpf.SamplerPyLayoutPY_WORD_OFFSET_BITS
	codeMask    = uint64(1)<<codeBits - 1
	offsetMask  = uint64(1)<<offsetBits - 1
	maxCodesPer = 1 << 16 // code objects named per process, at most
)

// IsFrameWord reports whether a stored user pc is a Python frame's word.
func IsFrameWord(pc uint64) bool { return pc&wordMark != 0 }

// HasFrames reports whether a stored user stack holds Python frames
// (they follow the native frames).
func HasFrames(pcs []uint64) bool { return len(pcs) > 0 && IsFrameWord(pcs[len(pcs)-1]) }

func decode(w uint64) (code, offset uint64, runEnd bool) {
	return (w & codeMask) << 3, w >> codeBits & offsetMask, w&wordRunEnd != 0
}

// Names the frames that could not be read, so a flame graph says why.
const (
	NameExited     = "[python: process exited]"
	NameUnreadable = "[python: code object unreadable]"
)

// A Process names the Python frames of one process, caching each code
// object it read.
type Process struct {
	In    *Interpreter
	Mem   Memory
	codes map[uint64]*cachedCode
	// codeType is PyCode_Type's address, learnt from the first code
	// object: every other must have it.
	codeType uint64
	round    uint64 // the naming round: a code object is checked once a round
	// Gone is set once the process's memory cannot be read any more.
	Gone bool
	// Sources, when set, names the code objects of a version without
	// co_qualname by their qualified names, read from View's files.
	Sources *Sources
	View    SourceView
}

type cachedCode struct {
	code    *Code
	checked uint64 // the round it was last found valid in
}

// NewProcess returns the namer of a process's Python frames.
func NewProcess(in *Interpreter, mem Memory) *Process {
	return &Process{In: in, Mem: mem, codes: make(map[uint64]*cachedCode), codeType: in.CodeType}
}

// NextRound starts a naming round (a drain): cached code objects are
// checked again, once, before they are used.
func (p *Process) NextRound() { p.round++ }

// Stats of a process's naming.
type Stats struct {
	Named, Unreadable, Exited uint64
	// Of the frames named before 3.11: Qualified by their source, or
	// left with co_name (QualnameFallbacks, by reason).
	Qualified         uint64
	QualnameFallbacks [FallbackReasons]uint64
}

// frame names one frame word.
func (p *Process) frame(w uint64, st *Stats) model.Frame {
	addr, offset, _ := decode(w)
	if c := p.code(addr); c != nil {
		st.Named++
		if c.qualDerived {
			if c.qualFallback == FallbackNone {
				st.Qualified++
			} else {
				st.QualnameFallbacks[c.qualFallback]++
			}
		}
		return model.Frame{Kind: model.FramePython, Function: c.Function, File: c.File, Line: c.Line(p.In.Layout.Minor, offset)}
	}
	if p.Gone {
		st.Exited++
		return model.Frame{Kind: model.FramePython, Function: NameExited}
	}
	st.Unreadable++
	return model.Frame{Kind: model.FramePython, Function: NameUnreadable}
}

func (p *Process) code(addr uint64) *Code {
	l := &p.In.Layout
	if cc, ok := p.codes[addr]; ok {
		if cc.checked == p.round || p.Gone {
			return cc.code
		}
		if cc.code.stillValid(p.Mem, l, addr) {
			cc.checked = p.round
			return cc.code
		}
		delete(p.codes, addr)
	}
	if p.Gone {
		return nil
	}
	if p.codeType == 0 {
		var b [8]byte
		if err := p.Mem.ReadAt(b[:], addr+objectType); err != nil {
			p.Gone = isGone(err)
			return nil
		}
		if t := word(b[:], 0); isCodeType(p.Mem, t) {
			p.codeType = t
		} else {
			return nil
		}
	}
	c, err := readCode(p.Mem, l, addr, p.codeType)
	if err != nil {
		p.Gone = isGone(err)
		return nil
	}
	if l.CodeQualname == 0 && p.Sources != nil {
		p.qualify(c)
	}
	if len(p.codes) >= maxCodesPer {
		clear(p.codes)
	}
	p.codes[addr] = &cachedCode{code: c, checked: p.round}
	return c
}

// Splice returns a stack's frames, leaf first, with its Python frames in
// place of the evaluation-loop frames that ran them: each run of Python
// frames (up to one marked as its run's end) takes the place of the next
// _PyEval_EvalFrameDefault frame. Runs left when the native frames end
// (a walk cut short) go at the root end.
func (p *Process) Splice(pcs []uint64, st *Stats) []model.Frame {
	n := len(pcs)
	for n > 0 && IsFrameWord(pcs[n-1]) {
		n--
	}
	native, words := pcs[:n], pcs[n:]
	out := make([]model.Frame, 0, len(pcs))
	next := 0 // the next Python frame word
	emitRun := func() {
		for next < len(words) {
			w := words[next]
			next++
			out = append(out, p.frame(w, st))
			if w&wordRunEnd != 0 {
				return
			}
		}
	}
	for i, pc := range native {
		if next < len(words) && p.In.InEval(pc, i > 0) {
			emitRun()
			continue
		}
		out = append(out, model.Frame{Kind: model.FrameNative, Addr: pc})
	}
	for next < len(words) {
		emitRun()
	}
	return out
}

// qualify gives c, of a version without co_qualname, the qualified name
// its source says, or leaves co_name and notes why.
func (p *Process) qualify(c *Code) {
	c.qualDerived = true
	q, why := p.Sources.Qualname(p.View, p.Gone, c.File, c.FirstLine, c.Function)
	if why != FallbackNone {
		c.qualFallback = why
		return
	}
	c.Function = q
}
