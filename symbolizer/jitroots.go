package symbolizer

// A JIT that writes its perf map at exit (the JVM's -XX:+DumpPerfMapAtExit)
// leaves it when /proc/PID/root is already gone. So the root of a process
// with JIT code is held open while it runs, and samples named after it
// exited still find the map. A JIT frame that stays unnamed says why.

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ember-profiler/ember/model"
)

// Why a JIT frame has no name, said in its name: "[unknown in [anon]: no
// /tmp/perf-7.map]".
const (
	jitNoMap      = "no /tmp/perf-%d.map"
	jitMapAtExit  = "perf map not written yet: -XX:+DumpPerfMapAtExit writes it at exit"
	jitMapRefused = "perf map not a readable regular file"
	jitNotInMap   = "not in the perf map"
	jitExited     = "process exited before its perf map was read"
	jitNoRoot     = "perf map not read: process root not readable"
)

// unnamedJIT names a JIT frame of mapping m that has no name, with why.
func unnamedJIT(m *model.Mapping, why string) string {
	return strings.TrimSuffix(unknownIn(m, m.Start), "]") + ": " + why + "]"
}

// jitRootHold bounds the roots held (one descriptor each) and how long one
// stays after its process exited: long enough for the drains that name the
// process's last samples.
const (
	maxJITRoots = 256
	jitRootHold = 2 * time.Minute
)

type jitRoot struct {
	root       *os.File
	nspid      uint32
	startTicks uint64
	exited     time.Time // zero while the process runs
}

// jitRoot returns the process's root directory and its PID in its own
// namespace, opened at its first JIT frame and kept past its exit; or why
// there is none. s.mu is held.
func (s *Symbolizer) jitRoot(proc *model.Process) (*os.File, uint32, string) {
	now := time.Now()
	s.sweepJITRoots(now)
	r := s.jitRoots[proc.PID]
	if r != nil && r.startTicks != proc.StartTicks {
		r.root.Close() // the PID was reused
		delete(s.jitRoots, proc.PID)
		r = nil
	}
	if proc.Exited {
		if r == nil {
			return nil, 0, jitExited
		}
		if r.exited.IsZero() {
			r.exited = now
		}
		return r.root, r.nspid, ""
	}
	if r != nil {
		return r.root, r.nspid, ""
	}
	root, nspid, err := openProcRoot(s.procRoot, proc.PID)
	if err != nil {
		return nil, 0, jitNoRoot // gone since its snapshot, or not ours to read
	}
	if len(s.jitRoots) >= maxJITRoots {
		// Used for this batch only: the process may not be named after it exits.
		s.oneShotRoots = append(s.oneShotRoots, root)
		return root, nspid, ""
	}
	if s.jitRoots == nil {
		s.jitRoots = make(map[uint32]*jitRoot)
	}
	s.jitRoots[proc.PID] = &jitRoot{root: root, nspid: nspid, startTicks: proc.StartTicks}
	return root, nspid, ""
}

// sweepJITRoots closes the roots of processes that exited jitRootHold ago,
// and the ones held for a single batch.
func (s *Symbolizer) sweepJITRoots(now time.Time) {
	for _, f := range s.oneShotRoots {
		f.Close()
	}
	s.oneShotRoots = s.oneShotRoots[:0]
	for pid, r := range s.jitRoots {
		if !r.exited.IsZero() && now.Sub(r.exited) > jitRootHold {
			r.root.Close()
			delete(s.jitRoots, pid)
		}
	}
}

// noteExits marks the held roots of processes a batch says exited, so
// that they go jitRootHold later even if no JIT frame of theirs is named
// again. s.mu is held.
func (s *Symbolizer) noteExits(b *model.Batch) {
	if len(s.jitRoots) == 0 {
		return
	}
	now := time.Now()
	for _, p := range b.Processes {
		if r := s.jitRoots[p.PID]; r != nil && p.Exited && r.startTicks == p.StartTicks && r.exited.IsZero() {
			r.exited = now
		}
	}
	// A process the collector forgot without telling: check /proc.
	for pid, r := range s.jitRoots {
		if r.exited.IsZero() && !processAlive(s.procRoot, pid) {
			r.exited = now
		}
	}
	s.sweepJITRoots(now)
}

func processAlive(procRoot string, pid uint32) bool {
	_, err := os.Stat(fmt.Sprintf("%s/%d", procRoot, pid))
	return err == nil
}

// dumpsPerfMapAtExit reports whether the JVM was told to write its perf
// map only when it exits.
func dumpsPerfMapAtExit(proc *model.Process) bool {
	return slices.ContainsFunc(proc.Cmdline, func(a string) bool {
		return strings.HasPrefix(a, "-XX:+DumpPerfMapAtExit")
	})
}
