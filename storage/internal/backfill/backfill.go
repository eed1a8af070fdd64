// Package backfill generates realistic profile history for the store's tests
// and benchmarks: about 200 processes of a few dozen programs (a few of them
// busy), each process labelled with comm, exe, cgroup and container, stacks
// of kernel and user frames with real-looking names drawn from per-program
// pools with a long (Zipf) tail, mappings with build IDs at per-process
// load addresses, short-lived processes coming and going, sampled at 99 Hz
// on 2 busy CPUs. The same seed and interval start give the same profile.
package backfill

import (
	"fmt"
	"math"
	"math/rand"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

// Config sets the shape of the history. Zero fields take the defaults.
type Config struct {
	Seed             int64
	Processes        int     // long-lived processes; default 200
	CPUs             int     // busy CPUs; default 2
	FrequencyHz      int     // per CPU; default 99
	StacksPerProgram int     // user stack pool per program; default 1,500
	ZipfS            float64 // stack popularity exponent; default 1.1
	TransientPerMin  float64 // short-lived processes started per minute; default 2
}

func (c *Config) defaults() {
	if c.Processes == 0 {
		c.Processes = 200
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.FrequencyHz == 0 {
		c.FrequencyHz = 99
	}
	if c.StacksPerProgram == 0 {
		c.StacksPerProgram = 1500
	}
	if c.ZipfS == 0 {
		c.ZipfS = 1.1
	}
	if c.TransientPerMin == 0 {
		c.TransientPerMin = 2
	}
}

// Generator makes one profile per interval.
type Generator struct {
	cfg        Config
	programs   []*program
	processes  []*process
	cumWeight  []float64
	kernel     kernelPool
	transients []*program
}

type program struct {
	comm, exe, cgroupUnit string
	container             bool
	buildID               string
	libs                  []lib
	funcs                 []fn // functions of the executable
	stacks                [][]frameRef
	kernelOf              []int // per user stack: its kernel stack, or -1 (user mode)
	zipfS                 float64
	userOnly              float64 // share of samples with no kernel frames
}

type lib struct {
	path, buildID string
	funcs         []fn
}

type fn struct {
	name, file string
	offset     uint64 // within its object
	line       int64
}

// frameRef is one frame of a user stack: object 0 is the executable, i>0 is libs[i-1].
type frameRef struct {
	object int
	fn     int
	delta  uint64 // call site within the function
}

type process struct {
	pid               uint32
	prog              *program
	cgroup, container string
	bases             []uint64 // load address per object
}

// New builds the programs and processes for a configuration.
func New(cfg Config) *Generator {
	cfg.defaults()
	r := rand.New(rand.NewSource(cfg.Seed))
	g := &Generator{cfg: cfg, kernel: newKernelPool(r)}
	libc := lib{path: "/usr/lib/x86_64-linux-gnu/libc.so.6", buildID: buildID(r), funcs: makeFuncs(r, libcNames, "", 0)}
	libstd := lib{path: "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.33", buildID: buildID(r), funcs: makeFuncs(r, cxxNames, "", 0)}
	libssl := lib{path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", buildID: buildID(r), funcs: makeFuncs(r, sslNames, "", 0)}
	for i, spec := range programSpecs {
		p := &program{comm: spec.comm, exe: spec.exe, cgroupUnit: spec.unit, container: spec.container,
			buildID: buildID(r), zipfS: cfg.ZipfS, userOnly: spec.userOnly}
		p.libs = []lib{libc}
		if spec.cxx {
			p.libs = append(p.libs, libstd)
		}
		if spec.ssl {
			p.libs = append(p.libs, libssl)
		}
		p.funcs = makeFuncs(r, nil, spec.vocab, 150+r.Intn(500))
		stacks := cfg.StacksPerProgram
		if i >= len(programSpecs)-len(transientSpecs) {
			stacks = 200
		}
		p.stacks = makeStacks(r, p, stacks)
		for range p.stacks {
			k := -1
			if r.Float64() >= p.userOnly {
				k = int(g.kernel.zipf(r))
			}
			p.kernelOf = append(p.kernelOf, k)
		}
		g.programs = append(g.programs, p)
	}
	g.transients = g.programs[len(programSpecs)-len(transientSpecs):]
	long := g.programs[:len(programSpecs)-len(transientSpecs)]
	pid := uint32(300)
	var total float64
	for i := range cfg.Processes {
		prog := long[weightedIndex(r, len(long))]
		pid += uint32(1 + r.Intn(400))
		proc := newProcess(r, pid, prog)
		g.processes = append(g.processes, proc)
		// A few busy processes, a long tail of quiet ones.
		total += 1 / pow(float64(i+1), 1.3)
		g.cumWeight = append(g.cumWeight, total)
	}
	return g
}

func newProcess(r *rand.Rand, pid uint32, prog *program) *process {
	proc := &process{pid: pid, prog: prog}
	if prog.container {
		proc.container = hexString(r, 64)
		proc.cgroup = fmt.Sprintf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope",
			hexString(r, 32), proc.container)
	} else {
		proc.cgroup = "/system.slice/" + prog.cgroupUnit
	}
	proc.bases = append(proc.bases, 0x550000000000+uint64(r.Intn(1<<28))<<12)
	for range prog.libs {
		proc.bases = append(proc.bases, 0x7f0000000000+uint64(r.Intn(1<<30))<<12)
	}
	return proc
}

// SamplesPerInterval is the number of samples in an interval of length d.
func (g *Generator) SamplesPerInterval(d time.Duration) int {
	return int(d.Seconds() * float64(g.cfg.CPUs*g.cfg.FrequencyHz))
}

// Interval returns the profile of the interval [start, start+d).
func (g *Generator) Interval(start time.Time, d time.Duration) *profile.Profile {
	seed := g.cfg.Seed ^ start.UnixNano()
	r := rand.New(rand.NewSource(seed))
	period := int64(time.Second) / int64(g.cfg.FrequencyHz)
	b := &builder{
		p: &profile.Profile{
			SampleType:    schema.CPUSampleTypes(),
			PeriodType:    schema.PeriodType.ValueType(),
			Period:        period,
			TimeNanos:     start.UnixNano(),
			DurationNanos: d.Nanoseconds(),
		},
		locations: make(map[locKey]*profile.Location),
		functions: make(map[fn]*profile.Function),
		mappings:  make(map[mapKey]*profile.Mapping),
		samples:   make(map[sampleKey]*profile.Sample),
	}
	// Short-lived processes of this interval: a new pid each, derived from time.
	procs := g.processes
	cum := g.cumWeight
	total := cum[len(cum)-1]
	nTransient := int(g.cfg.TransientPerMin*d.Minutes() + r.Float64())
	var transients []*process
	for i := range nTransient {
		prog := g.transients[r.Intn(len(g.transients))]
		pid := uint32(100000 + (start.Unix()/int64(d.Seconds()+1)*7+int64(i))%4000000)
		transients = append(transients, newProcess(r, pid, prog))
	}
	n := g.SamplesPerInterval(d)
	zipfs := make(map[*program]*rand.Zipf)
	for range n {
		var proc *process
		if len(transients) > 0 && r.Float64() < 0.02 {
			proc = transients[r.Intn(len(transients))]
		} else {
			x := r.Float64() * total
			i := searchFloat(cum, x)
			proc = procs[i]
		}
		prog := proc.prog
		z := zipfs[prog]
		if z == nil {
			z = rand.NewZipf(r, prog.zipfS, 1, uint64(len(prog.stacks)-1))
			zipfs[prog] = z
		}
		user := int(z.Uint64())
		// A code path makes the same system call each time; now and then
		// a timer interrupt lands on top of it instead.
		kstack := prog.kernelOf[user]
		if r.Intn(10) == 0 {
			kstack = g.kernel.timer
		}
		tid := proc.pid + uint32(r.Intn(4))
		b.add(sampleKey{proc: proc, tid: tid, user: user, kernel: kstack}, period, &g.kernel)
	}
	return b.p
}

type sampleKey struct {
	proc         *process
	tid          uint32
	user, kernel int
}

type locKey struct {
	mapping *profile.Mapping
	addr    uint64
}

type mapKey struct {
	proc   *process
	object int // -1: kernel
}

type builder struct {
	p         *profile.Profile
	locations map[locKey]*profile.Location
	functions map[fn]*profile.Function
	mappings  map[mapKey]*profile.Mapping
	samples   map[sampleKey]*profile.Sample
}

const kernelStart = 0xffffffff81000000

func (b *builder) add(k sampleKey, period int64, kp *kernelPool) {
	if s, ok := b.samples[k]; ok {
		s.Value[0]++
		s.Value[1] += period
		return
	}
	var locs []*profile.Location
	if k.kernel >= 0 {
		km := b.mapping(mapKey{nil, -1}, func() *profile.Mapping {
			return &profile.Mapping{Start: kernelStart, Limit: ^uint64(0), File: "[kernel.kallsyms]", HasFunctions: true}
		})
		for _, f := range kp.stacks[k.kernel] {
			kf := kp.funcs[f]
			locs = append(locs, b.location(km, kernelStart+kf.offset+7, kf))
		}
	}
	prog := k.proc.prog
	for _, fr := range prog.stacks[k.user] {
		object := fr.object
		m := b.mapping(mapKey{k.proc, object}, func() *profile.Mapping {
			base := k.proc.bases[object]
			if object == 0 {
				return &profile.Mapping{Start: base, Limit: base + 0x800000, Offset: 0, File: prog.exe, BuildID: prog.buildID, HasFunctions: true}
			}
			l := prog.libs[object-1]
			return &profile.Mapping{Start: base, Limit: base + 0x200000, Offset: 0x28000, File: l.path, BuildID: l.buildID, HasFunctions: true}
		})
		var f fn
		if object == 0 {
			f = prog.funcs[fr.fn]
		} else {
			f = prog.libs[object-1].funcs[fr.fn]
		}
		locs = append(locs, b.location(m, m.Start+f.offset+fr.delta, f))
	}
	s := &profile.Sample{
		Location: locs,
		Value:    []int64{1, period},
		Label:    map[string][]string{schema.LabelComm: {prog.comm}, schema.LabelExe: {prog.exe}, schema.LabelCgroup: {k.proc.cgroup}},
		NumLabel: map[string][]int64{schema.LabelPID: {int64(k.proc.pid)}, schema.LabelTID: {int64(k.tid)}},
	}
	if k.proc.container != "" {
		s.Label[schema.LabelContainer] = []string{k.proc.container}
	}
	b.samples[k] = s
	b.p.Sample = append(b.p.Sample, s)
}

func (b *builder) mapping(k mapKey, mk func() *profile.Mapping) *profile.Mapping {
	if m, ok := b.mappings[k]; ok {
		return m
	}
	m := mk()
	m.ID = uint64(len(b.p.Mapping) + 1)
	b.p.Mapping = append(b.p.Mapping, m)
	b.mappings[k] = m
	return m
}

func (b *builder) location(m *profile.Mapping, addr uint64, f fn) *profile.Location {
	k := locKey{m, addr}
	if l, ok := b.locations[k]; ok {
		return l
	}
	pf, ok := b.functions[f]
	if !ok {
		pf = &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: f.name, SystemName: f.name, Filename: f.file}
		b.p.Function = append(b.p.Function, pf)
		b.functions[f] = pf
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Mapping: m, Address: addr,
		Line: []profile.Line{{Function: pf, Line: f.line + int64((addr-m.Start)%40)}}}
	b.p.Location = append(b.p.Location, l)
	b.locations[k] = l
	return l
}

// makeStacks draws a program's pool of user stacks: a fixed root
// (_start, __libc_start_main, main), a walk through the program's functions,
// and often a libc or library leaf. Pool order is popularity order.
func makeStacks(r *rand.Rand, p *program, n int) [][]frameRef {
	// Call graph: each function calls a few others.
	callees := make([][]int, len(p.funcs))
	for i := range callees {
		for range 2 + r.Intn(4) {
			callees[i] = append(callees[i], 3+r.Intn(len(p.funcs)-3))
		}
	}
	seen := make(map[string]bool)
	var stacks [][]frameRef
	for len(stacks) < n {
		// Root first; reversed to leaf first at the end.
		var st []frameRef
		st = append(st, frameRef{1, 0, 0x29}, frameRef{1, 1, 0x8a}, frameRef{0, 2, 0x1d})
		depth := 4 + r.Intn(20)
		cur := 3 + r.Intn(len(p.funcs)-3)
		for range depth {
			st = append(st, frameRef{0, cur, uint64(8 + 5*r.Intn(4))})
			cur = callees[cur][r.Intn(len(callees[cur]))]
		}
		if r.Float64() < 0.5 {
			li := r.Intn(len(p.libs))
			st = append(st, frameRef{li + 1, 2 + r.Intn(len(p.libs[li].funcs)-2), uint64(4 * r.Intn(8))})
		}
		for i, j := 0, len(st)-1; i < j; i, j = i+1, j-1 {
			st[i], st[j] = st[j], st[i]
		}
		key := fmt.Sprint(st)
		if seen[key] {
			continue
		}
		seen[key] = true
		stacks = append(stacks, st)
	}
	return stacks
}

// kernelPool is a pool of kernel stacks, leaf first, over kernel functions.
type kernelPool struct {
	funcs  []fn
	stacks [][]int
	timer  int // the stack of a timer interrupt alone
}

func newKernelPool(r *rand.Rand) kernelPool {
	kp := kernelPool{}
	index := make(map[string]int)
	var off uint64
	for _, path := range kernelPaths {
		for _, name := range path {
			if _, ok := index[name]; !ok {
				index[name] = len(kp.funcs)
				off += uint64(0x100 + r.Intn(0x2000))
				kp.funcs = append(kp.funcs, fn{name: name, offset: off})
			}
		}
	}
	var timer []int
	for _, name := range irqPath {
		index[name] = len(kp.funcs)
		off += 0x300
		kp.funcs = append(kp.funcs, fn{name: name, offset: off})
		timer = append([]int{index[name]}, timer...)
	}
	kp.timer = len(kp.stacks)
	kp.stacks = append(kp.stacks, timer)
	for _, path := range kernelPaths {
		// Each path is root first; variants cut it short or add an
		// interrupt on top.
		for v := range 12 {
			var st []int
			cut := len(path) - r.Intn(min(3, len(path)))
			for _, name := range path[:cut] {
				st = append(st, index[name])
			}
			if v%3 == 0 {
				for _, name := range irqPath {
					st = append(st, index[name])
				}
			}
			for i, j := 0, len(st)-1; i < j; i, j = i+1, j-1 {
				st[i], st[j] = st[j], st[i]
			}
			kp.stacks = append(kp.stacks, st)
		}
	}
	return kp
}

// zipf picks a kernel stack, favouring the first ones.
func (kp *kernelPool) zipf(r *rand.Rand) uint64 {
	return uint64(float64(len(kp.stacks)) * pow(r.Float64(), 3))
}

func makeFuncs(r *rand.Rand, names []string, vocab string, n int) []fn {
	var out []fn
	var off uint64 = 0x1000
	add := func(name, file string) {
		off += uint64(0x40 + r.Intn(0x800))
		out = append(out, fn{name: name, file: file, offset: off, line: int64(10 + r.Intn(3000))})
	}
	if names != nil {
		for _, n := range names {
			add(n, "")
		}
		return out
	}
	add("_start", "")
	add("__libc_start_main", "")
	add("main", vocab+"/main.c")
	words := vocabs[vocab]
	seen := map[string]bool{}
	for len(out) < n {
		a, b, c := verbs[r.Intn(len(verbs))], words[r.Intn(len(words))], nouns[r.Intn(len(nouns))]
		var name string
		switch r.Intn(3) {
		case 0:
			name = a + "_" + b + "_" + c
		case 1:
			name = vocab + "::" + title(b) + "::" + title(a) + title(c)
		default:
			name = title(b) + title(c) + title(a)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		add(name, fmt.Sprintf("src/%s/%s.c", vocab, b))
	}
	return out
}

func title(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-32) + s[1:]
}

func buildID(r *rand.Rand) string { return hexString(r, 40) }

func hexString(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.Intn(16)]
	}
	return string(b)
}

// weightedIndex favours low indices: a few programs have many processes.
func weightedIndex(r *rand.Rand, n int) int {
	return int(float64(n) * pow(r.Float64(), 2))
}

func searchFloat(a []float64, x float64) int {
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if a[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func pow(x, y float64) float64 { return math.Pow(x, y) }
