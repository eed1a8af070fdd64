// Package symbolizer turns the collector's raw stacks (a *model.Batch of
// addresses and process snapshots) into a named pprof profile
// (*profile.Profile), which the storage and web stages consume.
//
// Kernel addresses are named from /proc/kallsyms, reread when an address is
// unknown or in a BPF program (which come and go). User addresses are
// normalized from runtime addresses to ELF virtual addresses through the
// mapping's file offset and the file's PT_LOAD segments, then named by the
// file's resolvers (see resolver), tried in order, each turning an ELF
// address into frames, innermost inlined call first:
//
//   - dwarfResolver: DWARF from the file, or from its separate debug file
//     (debugfile.go: by build ID, .gnu_debuglink with its CRC, or path,
//     under Options.DebugDirs and /usr/lib/debug, and by .gnu_debuglink
//     beside the object inside the process's root): function, file, line
//     and inlined calls (delve's reader.InlineStack).
//   - goResolver: Go's .gopclntab, for Go binaries without DWARF, with
//     the calls the Go compiler inlined (goinline.go).
//   - symtabResolver: .symtab, .dynsym, and MiniDebugInfo (.gnu_debugdata).
//
// Frames an unwinder hands over already named (model.Sample.UserFrames:
// interpreted functions with their file and line, JIT symbols) become
// locations without a mapping, named as given (profile.go).
//
// C++ and Rust names are demangled as a pass over the frames (demangle.go).
// Anonymous executable memory is named from the process's JIT perf map
// (perfmap.go). Files are read only through the *os.File the collector
// holds open, never by path. Debug files are found by path, partly chosen
// by the traced process, so they are resolved inside a debug root or the
// process's root and checked to be regular files before they are opened
// (debugopen.go).
//
// Everything read from a file is bounded (section sizes, compression
// ratios, line table headers checked before parsing, DIE walks, parse
// time), and every parser runs under recover: a hostile file gives an
// error for that source and the next resolver is tried.
//
// Parsed files are cached by build ID (else by device, inode, size and
// times), and results per (file, address) and JIT perf maps per process,
// all within one memory budget (Options.MaxCacheBytes); Stats reports the
// counters.
//
// Frames that cannot be named are never blank: they carry a bracketed
// marker saying why (see the marker constants and unknownIn).
package symbolizer
