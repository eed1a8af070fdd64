package model

// FrameKind says what a Frame is and who named it.
type FrameKind uint8

const (
	// FrameNative is a machine address in a mapped file (Addr), named by
	// the symbolizer from the file, like the addresses in Sample.User.
	FrameNative FrameKind = iota
	// FrameInterpreted is a function of an interpreted language (Python,
	// Ruby, PHP...) named by the unwinder that read the interpreter's own
	// stack: Function, and File and Line where known. Addr is unused.
	FrameInterpreted
	// FrameJIT is code a runtime compiled while running, named by the
	// runtime: Function, the address it ran at (Addr), and File and Line
	// where the runtime records them.
	FrameJIT
	// FramePython is an interpreted frame of CPython: its function's
	// qualified name, file and line, read from the interpreter's own
	// frames. It is named and written like FrameInterpreted, and tells
	// views which language it is.
	FramePython
)

// Interpreted reports whether frames of the kind are an interpreter's
// functions, which have no address of their own.
func (k FrameKind) Interpreted() bool { return k == FrameInterpreted || k == FramePython }

func (k FrameKind) String() string {
	switch k {
	case FrameNative:
		return "native"
	case FrameInterpreted:
		return "interpreted"
	case FrameJIT:
		return "JIT"
	case FramePython:
		return "python"
	}
	return "unknown"
}

// A Frame is one user frame as an unwinder hands it over: an address for
// the symbolizer to name, or a frame the unwinder named itself, so that the
// symbolizer need not guess what an interpreter's loop was running.
type Frame struct {
	Kind FrameKind
	// Addr is the leaf pc for the first frame of a stack and a return
	// address for every other, as in Sample.User.
	Addr     uint64
	Function string
	File     string
	Line     int64
}
