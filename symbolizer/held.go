package symbolizer

// Samples of a JVM run with -XX:+DumpPerfMapAtExit are held back while it
// runs: its perf map appears only when it exits, and samples named before
// would keep unnamed JIT frames. Their native frames are named at once,
// while the batch's files are open; the JIT frames when the process has
// exited (from the map, through the root held for it), or after
// maxHoldTime with the reason they are unnamed. FlushHeld names the rest
// when the pipeline stops.

import (
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
)

// maxHoldTime bounds how long samples wait for a map, and maxHeldSamples
// how many (distinct stacks, each a few KiB at most) wait at once.
const (
	maxHoldTime    = 5 * time.Minute
	maxHeldSamples = 20000
)

type heldProc struct {
	proc    *model.Process // its snapshot, for labels and the perf map
	since   time.Time
	samples []heldSample
}

type heldSample struct {
	smp         model.Sample // kernel stack and counts; user stack in user
	user        []heldFrame
	periodNanos int64
}

// heldFrame is a user address with what its pprof location needs: its
// mapping, and its frames unless it is JIT code, named later.
type heldFrame struct {
	addr    uint64
	mapping model.Mapping // File nil: only its range and path are used
	buildID string
	jit     bool
	frames  []frame
}

// hold keeps a sample of a running process whose JIT writes its perf map
// at exit, with its native frames named, and reports whether it did.
func (pb *profileBuilder) hold(smp *model.Sample, proc *model.Process, periodNanos int64) bool {
	s := pb.s
	if proc == nil || proc.Exited || proc.SnapshotErr != nil || smp.UserLost != model.LostNone ||
		smp.UserFrames != nil || smp.Values != nil || len(smp.User) == 0 || !dumpsPerfMapAtExit(proc) ||
		s.heldCount >= maxHeldSamples {
		return false
	}
	jit := false
	for _, addr := range smp.User {
		cm := proc.FindMapping(addr)
		if cm == nil {
			return false
		}
		jit = jit || cm.File == nil && isJITMapping(cm)
	}
	if !jit || s.perfMapFor(proc, pb.perfMaps).why != jitMapAtExit {
		return false // nothing to wait for
	}
	user := make([]heldFrame, len(smp.User))
	for i, addr := range smp.User {
		cm := proc.FindMapping(addr)
		hf := heldFrame{addr: addr, mapping: *cm}
		hf.mapping.File = nil
		if cm.File == nil && isJITMapping(cm) {
			hf.jit = true
		} else {
			key := pb.fileKey(cm)
			hf.frames, hf.buildID = s.userFrames(key.key, key.err, proc, cm, addr, lookupAddress(addr, i > 0))
		}
		user[i] = hf
	}
	h := s.held[proc.PID]
	if h == nil || h.proc.StartTicks != proc.StartTicks {
		if s.held == nil {
			s.held = make(map[uint32]*heldProc)
		}
		h = &heldProc{proc: proc, since: time.Now()}
		s.held[proc.PID] = h
	}
	c := *smp
	c.User, c.Kernel = nil, slices.Clone(smp.Kernel)
	h.samples = append(h.samples, heldSample{smp: c, user: user, periodNanos: periodNanos})
	s.heldCount++
	return true
}

// addHeld adds the held samples of processes that exited or waited
// maxHoldTime, or all of them when flush is set.
func (pb *profileBuilder) addHeld(flush bool) {
	s := pb.s
	now := time.Now()
	for pid, h := range s.held {
		alive := processAlive(s.procRoot, pid)
		if alive && !flush && now.Sub(h.since) < maxHoldTime {
			continue
		}
		proc := *h.proc
		proc.Exited = !alive
		look := s.readPerfMap(&proc)
		for i := range h.samples {
			pb.addHeldSample(&proc, &h.samples[i], look)
		}
		s.heldCount -= len(h.samples)
		delete(s.held, pid)
	}
}

func (pb *profileBuilder) addHeldSample(proc *model.Process, h *heldSample, look perfMapLook) {
	locs := pb.kernelLocations(&h.smp)
	for i := range h.user {
		hf := &h.user[i]
		mk := mappingKey{kind: kindUser, pid: proc.PID, start: hf.mapping.Start}
		lk := locationKey{mapping: mk, addr: hf.addr}
		loc, ok := pb.locations[lk]
		if !ok {
			frames := hf.frames
			if hf.jit {
				frames = jitFramesFrom(look, &hf.mapping, lookupAddress(hf.addr, i > 0))
			}
			loc = pb.addLocation(lk, pb.userMapping(mk, &hf.mapping, hf.buildID), hf.addr, frames)
		}
		locs = append(locs, loc)
	}
	if h.smp.UserTruncated {
		locs = append(locs, pb.markerLocation(markerTruncated))
	}
	pb.appendSample(&h.smp, proc, locs, h.periodNanos)
}

// FlushHeld names the samples still held, into a profile of their own, or
// returns nil when there are none. The pipeline calls it when it stops.
func (s *Symbolizer) FlushHeld() (*profile.Profile, error) {
	s.mu.Lock()
	n := s.heldCount
	s.mu.Unlock()
	if n == 0 {
		return nil, nil
	}
	var period int64
	for _, h := range s.held {
		period = h.samples[0].periodNanos
		break
	}
	now := time.Now()
	return s.profile(&model.Batch{Start: now, End: now, PeriodNanos: period}, true)
}
