// Package symbolizer turns the collector's raw stacks (a *collector.Batch of
// addresses and process snapshots) into a named pprof profile
// (*profile.Profile), which the storage and web stages consume.
//
// Kernel addresses are named from /proc/kallsyms. User addresses are
// normalized from runtime addresses to ELF virtual addresses through the
// mapping's file offset and the file's PT_LOAD segments, then looked up in
// the file's symbol tables. Files are read only through the *os.File the
// collector holds open, never by path.
//
// The seam for richer symbols: each parsed file carries a list of resolvers
// (see resolver), tried in order, each turning an ELF address into frames,
// innermost inlined call first. Today there is one, the ELF symbol table
// (symtabResolver). DWARF line tables with inlined frames and Go's
// .gopclntab for stripped Go binaries go in front of it in the same list;
// demangling is a pass over the returned frames; JIT maps
// (/tmp/perf-PID.map) are a per-process resolver for anonymous mappings.
//
// Frames that cannot be named are never blank: they carry a bracketed
// marker saying why (see the marker constants and unknownIn).
package symbolizer
