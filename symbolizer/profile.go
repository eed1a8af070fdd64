package symbolizer

import (
	"cmp"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/mainmapping"

	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/schema"
)

const (
	kernelMappingFile = "[kernel.kallsyms]"
	anonMappingFile   = "[anon]"
	// deletedSuffix ends the mapping path of a deleted file, as in
	// /proc/PID/maps.
	deletedSuffix = " (deleted)"
)

// Profile names every address of a batch and returns it as a pprof
// profile: samples/count and cpu/nanoseconds per sample, each sample's
// locations leaf first (kernel frames, then user frames), labelled with
// comm, pid and tid, in a deterministic order (pid, tid, then stack).
// Frames an unwinder already named (Sample.UserFrames) are kept as named
// (see userFrameLocation).
//
// Files are read through the *os.File values in the batch's mappings,
// which must stay open for the duration of the call.
func (s *Symbolizer) Profile(b *model.Batch) (*profile.Profile, error) {
	return s.profile(b, false)
}

// profile names a batch, and the held samples that are due (all of them
// with flush).
func (s *Symbolizer) profile(b *model.Batch, flush bool) (*profile.Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Tables are read from mapped files: one truncated meanwhile faults,
	// and the fault must become a panic the readers recover from, not a
	// crash of the daemon.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.publishStats() // after releaseTouched, which frees memory
	defer s.releaseTouched()

	periodNanos := b.PeriodNanos
	if periodNanos == 0 && b.FrequencyHz > 0 {
		periodNanos = 1e9 / int64(b.FrequencyHz)
	}
	pb := &profileBuilder{
		s:         s,
		batch:     b,
		fileKeys:  make(map[*model.Mapping]fileKeyResult),
		mappings:  make(map[mappingKey]*profile.Mapping),
		locations: make(map[locationKey]*profile.Location),
		markers:   make(map[string]*profile.Location),
		functions: make(map[frame]*profile.Function),
		perfMaps:  make(map[uint32]perfMapLook),
		p: &profile.Profile{
			SampleType:    sampleTypes(b),
			PeriodType:    schema.PeriodType.ValueType(),
			Period:        periodNanos,
			TimeNanos:     b.Start.UnixNano(),
			DurationNanos: b.End.Sub(b.Start).Nanoseconds(),
		},
	}
	if b.Start.IsZero() {
		pb.p.TimeNanos = 0
	}
	if err := schema.CheckSampleTypes(pb.p.SampleType); err != nil {
		return nil, fmt.Errorf("batch values: %w", err)
	}
	pb.addHeld(flush)
	for _, smp := range sortedSamples(b.Samples) {
		pb.addSample(smp, periodNanos)
	}
	s.noteExits(b)
	orderMappings(pb.p, b)
	mainmapping.Place(pb.p)
	if err := pb.p.CheckValid(); err != nil {
		// A bug here, not bad input: every ID is assigned by the builder.
		return nil, err
	}
	return pb.p, nil
}

// sortedSamples orders samples by pid, tid, then stack, so that location,
// function and mapping IDs (assigned in first-use order) and the sample list
// are the same for the same batch.
func sortedSamples(in []model.Sample) []*model.Sample {
	out := make([]*model.Sample, len(in))
	for i := range in {
		out[i] = &in[i]
	}
	slices.SortStableFunc(out, func(a, b *model.Sample) int {
		return cmp.Or(
			cmp.Compare(a.PID, b.PID),
			cmp.Compare(a.TID, b.TID),
			slices.Compare(a.Kernel, b.Kernel),
			slices.Compare(a.User, b.User),
			slices.CompareFunc(a.UserFrames, b.UserFrames, compareFrames),
			cmp.Compare(a.KernelLost, b.KernelLost),
			cmp.Compare(a.UserLost, b.UserLost),
			compareBool(a.KernelTruncated, b.KernelTruncated),
			compareBool(a.UserTruncated, b.UserTruncated),
			cmp.Compare(a.Comm, b.Comm),
			cmp.Compare(a.State, b.State),
		)
	})
	return out
}

func compareFrames(a, b model.Frame) int {
	return cmp.Or(
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Addr, b.Addr),
		cmp.Compare(a.Function, b.Function),
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// profileBuilder accumulates one profile, deduplicating mappings,
// locations and functions.
type profileBuilder struct {
	s     *Symbolizer
	batch *model.Batch
	// fileKeys caches one stat per mapping per call.
	fileKeys  map[*model.Mapping]fileKeyResult
	mappings  map[mappingKey]*profile.Mapping
	locations map[locationKey]*profile.Location
	markers   map[string]*profile.Location
	// named holds the locations of frames unwinders named (interpreted,
	// JIT), by the frame itself; made at the first, so that batches of
	// native stacks cost nothing more.
	named     map[model.Frame]*profile.Location
	functions map[frame]*profile.Function
	// perfMaps holds the JIT perf maps already looked at in this call.
	perfMaps map[uint32]perfMapLook
	p        *profile.Profile
}

type fileKeyResult struct {
	key fileKey
	err error
}

type mappingKind uint8

const (
	kindMarker   mappingKind = iota // no mapping: marker frames
	kindKernel                      // [kernel.kallsyms]
	kindUser                        // one mapping of one process
	kindUnmapped                    // an address of a process, in no known mapping
	kindPython                      // [python]: CPython's frames, of every process
)

// pythonMapping is the pseudo file Python frames are in, which tells views
// their language.
const pythonMapping = "[python]"

// mappingKey identifies a pprof mapping: the kernel, or one process's
// mapping by its start address.
type mappingKey struct {
	kind  mappingKind
	pid   uint32
	start uint64
}

// locationKey deduplicates locations per (mapping, address). An address
// seen both as a leaf and as a return address is named as it was first
// seen (samples are sorted, so that is deterministic); the two lookups
// differ only when a leaf sits on a function's first byte right after a
// call that does not return. Marker frames have no mapping or address and
// are deduplicated by name in profileBuilder.markers (a string in this key
// would slow every lookup).
type locationKey struct {
	mapping mappingKey
	addr    uint64
	marker  string // the frame of an address without a process
}

func (pb *profileBuilder) addSample(smp *model.Sample, periodNanos int64) {
	proc := pb.batch.Processes[smp.Key()]
	if pb.hold(smp, proc, periodNanos) {
		return // named in a later batch, with its JIT's perf map
	}
	locs := pb.kernelLocations(smp)
	switch smp.UserLost {
	case model.LostNone, model.LostKernelThread, model.LostExiting, model.LostExecve:
		// Kernel threads and processes past releasing their memory have no
		// user stack to lose: no user frames and no marker.
		if smp.UserFrames != nil {
			for i, f := range smp.UserFrames {
				locs = append(locs, pb.userFrameLocation(proc, smp.PID, f, i > 0))
			}
		} else {
			for i, addr := range smp.User {
				loc := pb.userLocation(proc, smp.PID, addr, i > 0)
				if n := len(locs); n > 0 && loc == locs[n-1] && loc.Address == 0 && loc.Mapping == nil {
					continue // one box for all frames of a process that is gone
				}
				locs = append(locs, loc)
			}
		}
		if smp.UserTruncated && smp.UserDepth() > 0 {
			locs = append(locs, pb.markerLocation(markerTruncated))
		}
	case model.LostPreempted:
		locs = append(locs, pb.markerLocation(markerPreempted))
	default:
		locs = append(locs, pb.markerLocation(userLost(smp.UserLost)))
	}
	pb.appendSample(smp, proc, locs, periodNanos)
}

// kernelLocations are the locations of a sample's kernel stack, or the
// marker of why it has none.
func (pb *profileBuilder) kernelLocations(smp *model.Sample) []*profile.Location {
	var locs []*profile.Location
	switch smp.KernelLost {
	case model.LostNone, model.LostKernelThread:
		for i, addr := range smp.Kernel {
			locs = append(locs, pb.kernelLocation(addr, i > 0))
		}
		if smp.KernelTruncated && len(smp.Kernel) > 0 {
			locs = append(locs, pb.markerLocation(markerTruncated))
		}
	default:
		locs = append(locs, pb.markerLocation(kernelLost(smp.KernelLost)))
	}
	return locs
}

// appendSample adds a sample with its locations to the profile.
func (pb *profileBuilder) appendSample(smp *model.Sample, proc *model.Process, locs []*profile.Location, periodNanos int64) {
	count := int64(smp.Count)
	values := make([]int64, len(pb.p.SampleType))
	values[0], values[1] = count, count*periodNanos
	copy(values[2:], smp.Values)
	pb.p.Sample = append(pb.p.Sample, &profile.Sample{
		Location: locs,
		Value:    values,
		Label:    sampleLabels(smp, proc),
		NumLabel: map[string][]int64{schema.LabelPID: {int64(smp.PID)}, schema.LabelTID: {int64(smp.TID)}},
	})
}

// sampleTypes are a CPU profile's, then the batch's own value types.
func sampleTypes(b *model.Batch) []*profile.ValueType {
	types := schema.CPUSampleTypes()
	for _, vt := range b.ValueTypes {
		types = append(types, &profile.ValueType{Type: vt.Type, Unit: vt.Unit})
	}
	return types
}

// sampleLabels are the string labels of a sample: comm always, thread_state
// for time off the CPU, and the executable, cgroup and container where the
// process snapshot has them.
func sampleLabels(smp *model.Sample, proc *model.Process) map[string][]string {
	labels := map[string][]string{schema.LabelComm: {smp.Comm}}
	if smp.State != model.StateNone {
		labels[schema.LabelThreadState] = []string{smp.State.String()}
	}
	if proc == nil {
		return labels
	}
	for name, value := range map[string]string{schema.LabelExe: proc.Exe, schema.LabelCgroup: proc.Cgroup, schema.LabelContainer: proc.ContainerID} {
		if value != "" {
			labels[name] = []string{value}
		}
	}
	return labels
}

// lookupAddress moves a return address back into the call instruction.
// Only the leaf address of a stack is where the CPU was; every other one
// is where a call returns to.
func lookupAddress(addr uint64, isReturn bool) uint64 {
	if isReturn && addr > 0 {
		return addr - 1
	}
	return addr
}

func (pb *profileBuilder) kernelLocation(addr uint64, isReturn bool) *profile.Location {
	mk := mappingKey{kind: kindKernel}
	lk := locationKey{mapping: mk, addr: addr}
	if loc, ok := pb.locations[lk]; ok {
		return loc
	}
	m, ok := pb.mappings[mk]
	if !ok {
		m = pb.addMapping(mk, &profile.Mapping{
			Start:        pb.s.kernel.addrs[0],
			Limit:        ^uint64(0),
			File:         kernelMappingFile,
			HasFunctions: true,
		})
	}
	return pb.addLocation(lk, m, addr, pb.s.kernelFrames(lookupAddress(addr, isReturn)))
}

func (pb *profileBuilder) userLocation(proc *model.Process, pid uint32, addr uint64, isReturn bool) *profile.Location {
	var cm *model.Mapping
	if proc != nil {
		cm = proc.FindMapping(addr)
	}
	if cm == nil {
		name := markerNoMapping
		lk := locationKey{mapping: mappingKey{kind: kindUnmapped, pid: pid}, addr: addr}
		switch {
		case proc == nil:
			name = markerNoProcess
		case proc.Exited || proc.SnapshotErr != nil || len(proc.Mappings) == 0:
			// A snapshot without a single executable mapping was read
			// after the process released its memory (a zombie shows
			// empty maps): every process that runs user code has some.
			name = markerExited
		}
		if name != markerNoMapping {
			// One location for all: the address of a process that is gone
			// names nothing, and kept it made a new location (and stack) in
			// the store for every address of every short-lived process,
			// a third of the soak's locations.
			lk = locationKey{mapping: mappingKey{kind: kindUnmapped}, marker: name}
			addr = 0
		}
		if loc, ok := pb.locations[lk]; ok {
			return loc
		}
		return pb.addLocation(lk, nil, addr, []frame{{Function: name, SystemName: name}})
	}

	mk := mappingKey{kind: kindUser, pid: pid, start: cm.Start}
	lk := locationKey{mapping: mk, addr: addr}
	if loc, ok := pb.locations[lk]; ok {
		return loc
	}
	var frames []frame
	var buildID string
	jit := false
	if cm.File == nil && isJITMapping(cm) {
		frames, jit = pb.s.jitFrames(proc, cm, lookupAddress(addr, isReturn), pb.perfMaps), true
	}
	if !jit {
		key := pb.fileKey(cm)
		frames, buildID = pb.s.userFrames(key.key, key.err, proc, cm, addr, lookupAddress(addr, isReturn))
	}
	return pb.addLocation(lk, pb.userMapping(mk, cm, buildID), addr, frames)
}

// userMapping is the pprof mapping of a process's mapping, made at its
// first location.
func (pb *profileBuilder) userMapping(mk mappingKey, cm *model.Mapping, buildID string) *profile.Mapping {
	m, ok := pb.mappings[mk]
	if !ok {
		file, mappingBuildID := cm.Path, buildID
		switch {
		case file == "":
			file = anonMappingFile // pprof takes a nameless mapping for the main binary
		case cm.Deleted:
			// pprof's Merge takes mappings with one build ID for one
			// file, and would show a deleted file under the path of a
			// live copy: without it the path, as the kernel shows it,
			// identifies the mapping. Its tables are still shared by
			// build ID.
			file, mappingBuildID = file+deletedSuffix, ""
		}
		m = pb.addMapping(mk, &profile.Mapping{
			Start:        cm.Start,
			Limit:        cm.Limit,
			Offset:       cm.Offset,
			File:         file,
			BuildID:      mappingBuildID,
			HasFunctions: true,
		})
	}
	return m
}

// userFrameLocation is the location of a frame an unwinder handed over.
// A native one is an address like those of Sample.User. Interpreted and
// JIT frames arrive named, and their location has no mapping: their code
// is in no file a pprof mapping could describe (bytecode, a JIT's heap),
// and the function's file name says where it came from. A JIT frame keeps
// its address; an interpreted one has none.
func (pb *profileBuilder) userFrameLocation(proc *model.Process, pid uint32, f model.Frame, isReturn bool) *profile.Location {
	if f.Kind == model.FrameNative {
		return pb.userLocation(proc, pid, f.Addr, isReturn)
	}
	if f.Kind.Interpreted() {
		f.Addr = 0
	}
	if loc, ok := pb.named[f]; ok {
		return loc
	}
	name := f.Function
	if name == "" {
		name = unnamedFrame(f.Kind)
	}
	var m *profile.Mapping
	system := name
	if f.Kind == model.FramePython {
		mk := mappingKey{kind: kindPython}
		if m = pb.mappings[mk]; m == nil {
			m = pb.addMapping(mk, &profile.Mapping{File: pythonMapping})
		}
		// No system name: pprof would take "<module>" for a demangled C++
		// template and cut it to nothing.
		system = ""
	}
	loc := pb.newLocation(m, f.Addr, []frame{{Function: name, SystemName: system, File: f.File, Line: f.Line}})
	if pb.named == nil {
		pb.named = make(map[model.Frame]*profile.Location)
	}
	pb.named[f] = loc
	return loc
}

func (pb *profileBuilder) fileKey(m *model.Mapping) fileKeyResult {
	if m.File == nil {
		return fileKeyResult{}
	}
	r, ok := pb.fileKeys[m]
	if !ok {
		r.key, r.err = statKey(m.File)
		pb.fileKeys[m] = r
	}
	return r
}

func (pb *profileBuilder) markerLocation(name string) *profile.Location {
	if loc, ok := pb.markers[name]; ok {
		return loc
	}
	loc := pb.newLocation(nil, 0, []frame{{Function: name, SystemName: name}})
	pb.markers[name] = loc
	return loc
}

func (pb *profileBuilder) addMapping(mk mappingKey, m *profile.Mapping) *profile.Mapping {
	m.ID = uint64(len(pb.p.Mapping) + 1)
	pb.p.Mapping = append(pb.p.Mapping, m)
	pb.mappings[mk] = m
	return m
}

// addLocation records a location under its key.
func (pb *profileBuilder) addLocation(lk locationKey, m *profile.Mapping, addr uint64, frames []frame) *profile.Location {
	loc := pb.newLocation(m, addr, frames)
	pb.locations[lk] = loc
	return loc
}

// newLocation adds a location whose lines are frames, innermost first, as
// pprof wants them.
func (pb *profileBuilder) newLocation(m *profile.Mapping, addr uint64, frames []frame) *profile.Location {
	loc := &profile.Location{
		ID:      uint64(len(pb.p.Location) + 1),
		Mapping: m,
		Address: addr,
	}
	for _, f := range frames {
		loc.Line = append(loc.Line, profile.Line{Function: pb.function(f), Line: f.Line})
		if m != nil {
			m.HasFilenames = m.HasFilenames || f.File != ""
			m.HasLineNumbers = m.HasLineNumbers || f.Line != 0
		}
	}
	if m != nil && len(frames) > 1 {
		m.HasInlineFrames = true
	}
	pb.p.Location = append(pb.p.Location, loc)
	return loc
}

// function deduplicates functions by (name, system name, file name).
func (pb *profileBuilder) function(f frame) *profile.Function {
	key := frame{Function: f.Function, SystemName: f.SystemName, File: f.File}
	if fn, ok := pb.functions[key]; ok {
		return fn
	}
	fn := &profile.Function{
		ID:         uint64(len(pb.p.Function) + 1),
		Name:       f.Function,
		SystemName: f.SystemName,
		Filename:   f.File,
	}
	pb.p.Function = append(pb.p.Function, fn)
	pb.functions[key] = fn
	return fn
}

// orderMappings puts executables first, then other files, then pseudo
// mappings such as [vdso], and the kernel last: pprof presents the first mapping as the profile's main binary, which
// for a profile of one process should be its executable.
func orderMappings(p *profile.Profile, b *model.Batch) {
	exes := make(map[string]bool)
	for _, proc := range b.Processes {
		if proc.Exe != "" {
			exes[proc.Exe] = true
			exes[proc.Exe+deletedSuffix] = true
		}
	}
	rank := func(m *profile.Mapping) int {
		switch {
		case exes[m.File]:
			return 0
		case m.File == kernelMappingFile:
			return 3
		case isPseudoPath(m.File):
			return 2
		}
		return 1
	}
	sort.SliceStable(p.Mapping, func(i, j int) bool { return rank(p.Mapping[i]) < rank(p.Mapping[j]) })
	for i, m := range p.Mapping {
		m.ID = uint64(i + 1)
	}
}

// releaseTouched lets go of the mapped pages this call read (see
// mappedFile.release); the tables stay parsed and the pages cached.
func (s *Symbolizer) releaseTouched() {
	for m := range s.touched {
		m.release()
	}
	clear(s.touched)
}
