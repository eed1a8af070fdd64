package symbolizer

import (
	"strings"

	"github.com/ianlancetaylor/demangle"
)

// demangleFrames sets the display name of frames whose system name is a
// C++ (Itanium, "_Z") or Rust (legacy "_ZN...17h<hash>E", v0 "_R") mangled
// name. The display name drops parameter lists and the Rust hash, as perf
// and most profilers show them, keeping namespaces, template arguments
// and clone suffixes ("[clone .cold]"); SystemName keeps the mangled name.
func demangleFrames(frames []frame) {
	for i := range frames {
		frames[i].Function = demangleName(frames[i].SystemName)
	}
}

func demangleName(name string) (out string) {
	defer func() {
		if recover() != nil {
			out = name
		}
	}()
	if !strings.HasPrefix(name, "_Z") && !strings.HasPrefix(name, "_R") {
		return name
	}
	// demangle.Filter returns the input unchanged when it cannot parse it.
	// Its parser is written for hostile input (fuzzed upstream); the length
	// cap keeps a pathological name from costing much.
	return demangle.Filter(name, demangle.NoParams, demangle.MaxLength(16))
}
