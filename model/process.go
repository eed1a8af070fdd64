package model

import "os"

// ProcessKey identifies one program image of a process.
type ProcessKey struct {
	PID, ExecSeq uint32
}

// Key returns the key of the process image a sample came from.
func (s *Sample) Key() ProcessKey { return ProcessKey{s.PID, s.ExecSeq} }

// A Process is what was known about a process image when it was first
// seen, refreshed when its mappings changed.
type Process struct {
	PID     uint32
	ExecSeq uint32
	// StartTicks is the start time from /proc/PID/stat, which tells a reused
	// PID apart from the process that had it before.
	StartTicks uint64
	Comm       string
	Exe        string
	Cmdline    []string // read for JVMs only (libjvm.so mapped)
	Cgroup     string
	// ContainerID is the container runtime's ID when the cgroup path names
	// one (Docker, containerd, CRI-O, Podman, Kubernetes pods).
	ContainerID string
	Mappings    []Mapping
	// CodeReserves are regions without access that start where anonymous
	// executable memory ends: what a JIT compiler reserved for its next
	// code pages (V8's code range, the JVM's code cache), which it maps as
	// it goes, between two reads of the process.
	CodeReserves []AddressRange
	// Exited is set once the process is known to have exited or replaced
	// this image by an execve; its mappings still resolve through the files
	// held open in Mappings.
	Exited bool
	// SnapshotErr is set when the image could not be read at first sight
	// (typically because the process had already exited or exec'd again).
	SnapshotErr error
}

// An AddressRange is [Start, Limit) of a process's address space.
type AddressRange struct {
	Start, Limit uint64
}

// A Mapping is one executable file-backed (or special) region of a process.
type Mapping struct {
	Start, Limit uint64 // runtime addresses, Limit exclusive
	Offset       uint64 // file offset of Start
	// Path is the path as the process sees it (in its own mount namespace),
	// or a pseudo path such as "[vdso]".
	Path       string
	Dev, Inode uint64
	Deleted    bool
	// File is the mapped file, opened through /proc/PID/map_files or the
	// process's root when the mapping was captured, so the file can be read
	// after the process exits or the path is replaced. Nil when it could not
	// be opened. The collector owns it and closes it after the batch that
	// holds it has been handed on and the next drain has happened.
	File *os.File
}

// FindMapping returns the mapping that holds addr, or nil.
func (p *Process) FindMapping(addr uint64) *Mapping {
	ms := p.Mappings
	lo, hi := 0, len(ms)
	for lo < hi {
		mid := (lo + hi) / 2
		switch {
		case addr < ms[mid].Start:
			hi = mid
		case addr >= ms[mid].Limit:
			lo = mid + 1
		default:
			return &ms[mid]
		}
	}
	return nil
}
