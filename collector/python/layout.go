// Package python reads CPython's own frames: it knows each version's
// structure offsets, tells a process's CPython from its mapped files, names
// a code object and its line from the process's memory, and splices the
// Python frames the BPF walker recorded into the native stack. The
// collector wires it to the sampler's maps.
package python

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ember-profiler/ember/bpf"
)

// Frames says how a version chains its frames (sampler's enum py_frames).
type Frames uint8

const (
	FramesObject    = Frames(bpf.SamplerPyFramesPY_FRAMES_OBJECT)     // 3.8-3.10: PyFrameObject; one eval-loop call a frame
	FramesEntryFlag = Frames(bpf.SamplerPyFramesPY_FRAMES_ENTRY_FLAG) // 3.11: _PyInterpreterFrame; is_entry ends a run
	FramesShim      = Frames(bpf.SamplerPyFramesPY_FRAMES_SHIM)       // 3.12+: a frame owned by the C stack ends a run
)

// A Layout is what Ember needs of one CPython version's structures: the
// walker's offsets (BPF) and the code object's (user space).
type Layout struct {
	Minor  int // 3.Minor
	Frames Frames
	// CFrame: the thread state points at a _PyCFrame that holds the
	// current frame (3.11, 3.12).
	CFrame bool

	RuntimeInterpHead          uint16 // _PyRuntimeState.interpreters.head
	InterpNext, InterpThreads  uint16 // PyInterpreterState.next, its first thread
	TStateNext, TStateThreadID uint16
	TStateFrame, CFrameFrame   uint16
	CFramePrevious             uint16 // _PyCFrame.previous
	FramePrevious, FrameCode   uint16
	FrameInstr, FrameFlag      uint16 // f_lasti/prev_instr/instr_ptr; is_entry/owner
	CodeAdaptive               uint16 // co_code_adaptive (3.11+)
	CodeFirstLine, CodeName    uint16
	CodeQualname, CodeFilename uint16 // CodeQualname 0: none (before 3.11)
	CodeLineTable, CodeSize    uint16 // co_lnotab (3.8, 3.9) or co_linetable
	UnicodeASCIISize           uint16 // sizeof(PyASCIIObject): where ASCII text starts
	UnicodeCompactSize         uint16 // sizeof(PyCompactUnicodeObject)
	FrameRead                  uint16 // bytes of a frame the walker reads
	LastiBytes                 bool   // f_lasti counts bytes (3.8, 3.9), not code units
}

// Shared by every version Ember knows.
const (
	objectType   = 8  // PyObject.ob_type
	typeName     = 24 // PyTypeObject.tp_name
	unicodeLen   = 16 // PyASCIIObject.length
	unicodeState = 32 // PyASCIIObject.state
	bytesSize    = 16 // PyVarObject.ob_size
	bytesData    = 32 // PyBytesObject.ob_sval
)

// layouts are the offsets of each minor version, from its headers
// (offsetof in a program built against each pyenv build's
// include/python3.X with Py_BUILD_CORE: testdata/python/offsets.c).
var layouts = map[int]Layout{
	8: {Minor: 8, Frames: FramesObject, RuntimeInterpHead: 32, InterpNext: 0, InterpThreads: 8,
		TStateNext: 8, TStateThreadID: 176, TStateFrame: 24,
		FramePrevious: 24, FrameCode: 32, FrameInstr: 104, FrameRead: 108, LastiBytes: true,
		CodeFirstLine: 40, CodeName: 112, CodeFilename: 104, CodeLineTable: 120, CodeSize: 176,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72},
	9: {Minor: 9, Frames: FramesObject, RuntimeInterpHead: 32, InterpNext: 0, InterpThreads: 8,
		TStateNext: 8, TStateThreadID: 176, TStateFrame: 24,
		FramePrevious: 24, FrameCode: 32, FrameInstr: 104, FrameRead: 108, LastiBytes: true,
		CodeFirstLine: 40, CodeName: 112, CodeFilename: 104, CodeLineTable: 120, CodeSize: 176,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72},
	10: {Minor: 10, Frames: FramesObject, RuntimeInterpHead: 32, InterpNext: 0, InterpThreads: 8,
		TStateNext: 8, TStateThreadID: 176, TStateFrame: 24,
		FramePrevious: 24, FrameCode: 32, FrameInstr: 96, FrameRead: 100,
		CodeFirstLine: 40, CodeName: 112, CodeFilename: 104, CodeLineTable: 120, CodeSize: 176,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72},
	11: {Minor: 11, Frames: FramesEntryFlag, CFrame: true, RuntimeInterpHead: 40, InterpNext: 0, InterpThreads: 16,
		TStateNext: 8, TStateThreadID: 152, TStateFrame: 56, CFrameFrame: 8, CFramePrevious: 16,
		FramePrevious: 48, FrameCode: 32, FrameInstr: 56, FrameFlag: 68, FrameRead: 72, CodeAdaptive: 184,
		CodeFirstLine: 72, CodeName: 120, CodeQualname: 128, CodeFilename: 112, CodeLineTable: 136, CodeSize: 192,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72},
	12: {Minor: 12, Frames: FramesShim, CFrame: true, RuntimeInterpHead: 40, InterpNext: 0, InterpThreads: 72,
		TStateNext: 8, TStateThreadID: 136, TStateFrame: 56, CFrameFrame: 0, CFramePrevious: 8,
		FramePrevious: 8, FrameCode: 0, FrameInstr: 56, FrameFlag: 70, FrameRead: 72, CodeAdaptive: 192,
		CodeFirstLine: 68, CodeName: 120, CodeQualname: 128, CodeFilename: 112, CodeLineTable: 136, CodeSize: 200,
		UnicodeASCIISize: 40, UnicodeCompactSize: 56},
	13: {Minor: 13, Frames: FramesShim, RuntimeInterpHead: 632, InterpNext: 7264, InterpThreads: 7344,
		TStateNext: 8, TStateThreadID: 152, TStateFrame: 72,
		FramePrevious: 8, FrameCode: 0, FrameInstr: 56, FrameFlag: 70, FrameRead: 72, CodeAdaptive: 200,
		CodeFirstLine: 68, CodeName: 120, CodeQualname: 128, CodeFilename: 112, CodeLineTable: 136, CodeSize: 208,
		UnicodeASCIISize: 40, UnicodeCompactSize: 56},
}

// ErrUnknownVersion: a CPython Ember has no offsets for; it is reported,
// never guessed.
var ErrUnknownVersion = errors.New("unknown CPython version")

// LayoutFor returns the layout of CPython 3.minor.
func LayoutFor(minor int) (Layout, error) {
	l, ok := layouts[minor]
	if !ok {
		return Layout{}, fmt.Errorf("%w 3.%d (known: 3.8 to 3.13)", ErrUnknownVersion, minor)
	}
	return l, nil
}

// debugCookie starts _Py_DebugOffsets, at the start of _PyRuntime (3.13+).
const debugCookie = "xdebugpy"

// DebugOffsetsBytes is how much of _PyRuntime ApplyDebugOffsets reads.
const DebugOffsetsBytes = 8 * 64

// ApplyDebugOffsets replaces l's offsets with those the runtime publishes
// in its _Py_DebugOffsets (3.13+), raw being the start of _PyRuntime. The
// version the cookie's header gives must be l's.
func (l *Layout) ApplyDebugOffsets(raw []byte) error {
	if len(raw) < DebugOffsetsBytes || string(raw[:8]) != debugCookie {
		return errors.New("no _Py_DebugOffsets at _PyRuntime")
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(raw[8*i:]) }
	if hex := u(1); hex>>24 != 3 || int(hex>>16&0xff) != l.Minor {
		return fmt.Errorf("_Py_DebugOffsets of version %#x, not 3.%d", hex, l.Minor)
	}
	if u(2) != 0 {
		return errors.New("free-threaded CPython is not supported")
	}
	// Words of _Py_DebugOffsets (3.13): cookie, version, free_threaded,
	// then each struct's size and fields in order.
	const (
		runtimeInterpHead = 5
		interpNext        = 8
		interpThreads     = 9
		tstateNext        = 21
		tstateFrame       = 23
		tstateThreadID    = 24
		framePrevious     = 29
		frameCode         = 30
		frameInstr        = 31
		frameOwner        = 33
		codeFilename      = 35
		codeName          = 36
		codeQualname      = 37
		codeLineTable     = 38
		codeFirstLine     = 39
		codeAdaptive      = 43
	)
	for _, f := range []struct {
		to   *uint16
		word int
	}{
		{&l.RuntimeInterpHead, runtimeInterpHead}, {&l.InterpNext, interpNext}, {&l.InterpThreads, interpThreads},
		{&l.TStateNext, tstateNext}, {&l.TStateFrame, tstateFrame}, {&l.TStateThreadID, tstateThreadID},
		{&l.FramePrevious, framePrevious}, {&l.FrameCode, frameCode}, {&l.FrameInstr, frameInstr},
		{&l.FrameFlag, frameOwner}, {&l.CodeFilename, codeFilename}, {&l.CodeName, codeName},
		{&l.CodeQualname, codeQualname}, {&l.CodeLineTable, codeLineTable}, {&l.CodeFirstLine, codeFirstLine},
		{&l.CodeAdaptive, codeAdaptive},
	} {
		v := u(f.word)
		if v > 0xffff {
			return fmt.Errorf("_Py_DebugOffsets word %d is %d, out of range", f.word, v)
		}
		*f.to = uint16(v)
	}
	return nil
}
