package collector

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/python"
	"github.com/ember-profiler/ember/model"
)

// An interpreter is one interpreter's part of the seam (ARCHITECTURE.md, "A
// new unwinder"): it finds its processes by their mapped files, sets up
// per-process state for its BPF walker, which appends frame words (bit 63
// set) to the walked stack, and names those words at each drain, splicing
// its frames into the native ones (Sample.UserFrames).
type interpreter interface {
	// attach looks at a process image and sets it up if it is one of its.
	// It says whether the image is, or may be, one of its: false only
	// when its files are surely none of its.
	attach(p *model.Process) bool
	// exited: the process is gone; its last samples are still to be named.
	exited(pid uint32)
	// name replaces the frame words of its processes' samples and counts
	// what it did in st.
	name(samples []model.Sample, st *model.Stats)
}

var _ interpreter = (*pythonUnwinder)(nil)

// pythonUnwinder is the CPython part of the interpreter seam: it finds the
// CPython of each process it is shown (by its mapped files), tells the BPF
// walker where its runtime is and its version's offsets (py_procs), and at
// each drain names the frames the walker recorded and splices them into
// the native stacks.
type pythonUnwinder struct {
	log   *slog.Logger
	procs *ebpf.Map // py_procs
	stats *ebpf.Map // py_stats, per CPU, since load

	detector python.Detector
	// sources names the frames of CPython before 3.11 by their qualified
	// names, from the source files, parsed once each.
	sources *python.Sources

	mu sync.Mutex
	// byPID holds the CPython processes, of their current image.
	byPID map[uint32]*pythonProcess
	// reported holds the files of unknown versions already logged.
	reported        map[string]bool
	unknownVersions uint64
	lastStats       [bpf.SamplerPyStatPY_STAT_MAX]uint64
}

type pythonProcess struct {
	execSeq uint32
	names   *python.Process
}

func newPythonUnwinder(objs *bpf.SamplerObjects, log *slog.Logger) *pythonUnwinder {
	return &pythonUnwinder{
		log:      log,
		procs:    objs.PyProcs,
		stats:    objs.PyStats,
		byPID:    make(map[uint32]*pythonProcess),
		reported: make(map[string]bool),
		sources:  python.NewSources(python.DefaultSourceBudget),
	}
}

// attach sets a process up for the walker if it runs a CPython Ember knows,
// and says false only when it runs none.
func (u *pythonUnwinder) attach(p *model.Process) bool {
	if p == nil || p.SnapshotErr != nil || p.Exited {
		return true
	}
	u.mu.Lock()
	old := u.byPID[p.PID]
	u.mu.Unlock()
	if old != nil && old.execSeq == p.ExecSeq {
		return true
	}
	in, err := u.detector.Detect(p)
	switch {
	case errors.Is(err, python.ErrNotPython):
		if old != nil {
			u.remove(p.PID) // an execve into something else
		}
		return false
	case errors.Is(err, python.ErrUnknownVersion):
		u.mu.Lock()
		u.unknownVersions++
		first := !u.reported[err.Error()] // names the file
		u.reported[err.Error()] = true
		u.mu.Unlock()
		if first {
			u.log.Warn("CPython version not supported: its frames stay the interpreter's", slog.Int("pid", int(p.PID)), slog.Any("err", err))
		}
		return true
	case err != nil:
		u.log.Info("CPython found but not readable: its frames stay the interpreter's", slog.Int("pid", int(p.PID)), slog.Any("err", err))
		return true
	}
	mem := python.ProcMemory{PID: int(p.PID)}
	if in.Layout.Minor >= 13 {
		raw := make([]byte, python.DebugOffsetsBytes)
		if err := mem.ReadAt(raw, in.Runtime); err != nil {
			u.log.Debug("read _Py_DebugOffsets", slog.Int("pid", int(p.PID)), slog.Any("err", err))
			return true
		}
		if err := in.Layout.ApplyDebugOffsets(raw); err != nil {
			u.log.Info("CPython's debug offsets are unusable: its frames stay the interpreter's", slog.Int("pid", int(p.PID)), slog.Any("err", err))
			return true
		}
	}
	l := &in.Layout
	cframe := uint8(0)
	if l.CFrame {
		cframe = 1
	}
	v := bpf.SamplerPyProc{
		Runtime: in.Runtime, CodeType: in.CodeType, ExecSeq: p.ExecSeq, Frames: uint8(l.Frames), Cframe: cframe,
		RuntimeInterpHead: l.RuntimeInterpHead, InterpNext: l.InterpNext, InterpThreads: l.InterpThreads,
		TstateNext: l.TStateNext, TstateThreadId: l.TStateThreadID, TstateFrame: l.TStateFrame,
		CframeFrame: l.CFrameFrame, CframePrevious: l.CFramePrevious, FramePrevious: l.FramePrevious, FrameCode: l.FrameCode,
		FrameInstr: l.FrameInstr, FrameFlag: l.FrameFlag, CodeAdaptive: l.CodeAdaptive, FrameRead: l.FrameRead,
	}
	if err := u.procs.Put(p.PID, &v); err != nil {
		u.log.Warn("set up the Python walker", slog.Int("pid", int(p.PID)), slog.Any("err", err))
		return true
	}
	names := python.NewProcess(in, mem)
	if l.CodeQualname == 0 {
		names.Sources, names.View = u.sources, u.sources.View(int(p.PID), p.StartTicks)
	}
	u.mu.Lock()
	u.byPID[p.PID] = &pythonProcess{execSeq: p.ExecSeq, names: names}
	u.mu.Unlock()
	u.log.Debug("walking Python frames", slog.Int("pid", int(p.PID)), slog.Int("minor", l.Minor), slog.String("file", in.Path))
	return true
}

// exited forgets the BPF side of a process; its namer stays until the
// drain after, so its last samples are named from the cache.
func (u *pythonUnwinder) exited(pid uint32) {
	_ = u.procs.Delete(pid)
	u.mu.Lock()
	if pp := u.byPID[pid]; pp != nil {
		pp.names.Gone = true
	}
	u.mu.Unlock()
}

func (u *pythonUnwinder) remove(pid uint32) {
	_ = u.procs.Delete(pid)
	u.mu.Lock()
	delete(u.byPID, pid)
	u.mu.Unlock()
}

// name replaces the frame words in the samples' user stacks by named
// Python frames, spliced into the native ones (Sample.UserFrames).
func (u *pythonUnwinder) name(samples []model.Sample, stats *model.Stats) {
	st := &stats.Python
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, pp := range u.byPID {
		pp.names.NextRound()
	}
	var ns python.Stats
	for i := range samples {
		s := &samples[i]
		if !python.HasFrames(s.User) {
			continue
		}
		pp := u.byPID[s.PID]
		if pp == nil || pp.execSeq != s.ExecSeq {
			// Not to be named any more: keep the native frames.
			n := len(s.User)
			for n > 0 && python.IsFrameWord(s.User[n-1]) {
				n--
			}
			s.User = s.User[:n]
			continue
		}
		s.UserFrames = pp.names.Splice(s.User, &ns)
		s.User = nil
	}
	st.Named, st.Unreadable, st.Exited = ns.Named, ns.Unreadable, ns.Exited
	st.Qualified = ns.Qualified
	for why, n := range ns.QualnameFallbacks {
		if n > 0 {
			if st.QualnameFallbacks == nil {
				st.QualnameFallbacks = make(map[string]uint64)
			}
			st.QualnameFallbacks[python.QualnameFallback(why).String()] += n
		}
	}
	for pid, pp := range u.byPID {
		if pp.names.Gone {
			delete(u.byPID, pid)
		}
	}
	st.UnknownVersions, u.unknownVersions = u.unknownVersions, 0
	u.readStats(st)
}

// readStats adds up the walker's per-CPU counters since the last drain.
func (u *pythonUnwinder) readStats(st *model.PythonStats) {
	var now [bpf.SamplerPyStatPY_STAT_MAX]uint64
	for i := range now {
		var perCPU []uint64
		if err := u.stats.Lookup(uint32(i), &perCPU); err != nil {
			return
		}
		for _, v := range perCPU {
			now[i] += v
		}
	}
	d := func(s bpf.SamplerPyStat) uint64 { return now[s] - u.lastStats[s] }
	st.Walks = d(bpf.SamplerPyStatPY_STAT_WALKS)
	st.NoThread = d(bpf.SamplerPyStatPY_STAT_NO_THREAD)
	st.NoFrame = d(bpf.SamplerPyStatPY_STAT_NO_FRAME)
	st.ReadFailed = d(bpf.SamplerPyStatPY_STAT_READ_FAILED)
	st.Depth = d(bpf.SamplerPyStatPY_STAT_DEPTH)
	st.Frames = d(bpf.SamplerPyStatPY_STAT_FRAMES)
	u.lastStats = now
}
