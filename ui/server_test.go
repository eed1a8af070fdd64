package ui_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/ui"
	"github.com/ember-profiler/ember/web"
)

// serveStore serves the API and the UI over store on a loopback port until
// the test ends, and returns the base URL.
func serveStore(t testing.TB, store *storage.Store, token string) string {
	t.Helper()
	return serveAPI(t, web.FromStorage(store), token, web.Limits{})
}

// slowStore never answers profiles of {comm="slow"}: a query past the
// server's time limit.
type slowStore struct{ web.Store }

func (s slowStore) Profile(ctx context.Context, from, to time.Time, selector string) (*profile.Profile, error) {
	if selector == `{comm="slow"}` {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Profile(ctx, from, to, selector)
}

func serveAPI(t testing.TB, store web.Store, token string, limits web.Limits) string {
	t.Helper()
	return serveWith(t, web.Options{Store: store, AuthToken: token, Limits: limits})
}

// serveWith serves the API and UI with opts.
func serveWith(t testing.TB, opts web.Options) string {
	t.Helper()
	opts.UI = ui.FS()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	api, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

func openStore(t testing.TB, dir string) *storage.Store {
	t.Helper()
	s, err := storage.Open(storage.Options{Dir: dir, MinFreeDiskBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The known data. Each minute of the target range burns 10 CPU-seconds:
// half in api.hotLoop; in the base range before it, api.hotLoop had a
// tenth, db.scan half and db.vacuum, gone since, a tenth. The recorded fixtures add real kernel and user
// stacks (a few seconds) to both.
type stackSpec struct {
	comm   string
	pid    int64
	frames []string // root first; "k:" marks a kernel frame
	share  float64
}

var targetStacks = []stackSpec{
	{"api", 100, []string{"main.main", "api.handle", "api.hotLoop"}, 0.5},
	{"api", 100, []string{"main.main", "api.handle", "encoding/json.Marshal", "runtime.mallocgc"}, 0.2},
	{"db", 200, []string{"main.main", "db.query", "db.scan"}, 0.2},
	{"db", 200, []string{"main.main", "db.query", "syscall.read", "k:entry_SYSCALL_64", "k:do_syscall_64", "k:ksys_read"}, 0.1},
}

var baseStacks = []stackSpec{
	{"api", 100, []string{"main.main", "api.handle", "api.hotLoop"}, 0.1},
	{"api", 100, []string{"main.main", "api.handle", "encoding/json.Marshal", "runtime.mallocgc"}, 0.2},
	{"db", 200, []string{"main.main", "db.query", "db.scan"}, 0.5},
	{"db", 200, []string{"main.main", "db.query", "syscall.read", "k:entry_SYSCALL_64", "k:do_syscall_64", "k:ksys_read"}, 0.1},
	{"db", 200, []string{"main.main", "db.query", "db.vacuum"}, 0.1}, // only in the base: the diff must still show it
}

const minuteCPU = 10 * int64(time.Second)

// profileBuilder makes pprof profiles with Ember's sample types.
type profileBuilder struct {
	p     *profile.Profile
	funcs map[string]*profile.Function
	locs  map[string]*profile.Location
	maps  map[bool]*profile.Mapping
}

func newProfile(start time.Time, d time.Duration) *profileBuilder {
	b := &profileBuilder{
		p: &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
			PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_101_010,
			TimeNanos: start.UnixNano(), DurationNanos: d.Nanoseconds(),
		},
		funcs: map[string]*profile.Function{}, locs: map[string]*profile.Location{}, maps: map[bool]*profile.Mapping{},
	}
	for i, kernel := range []bool{false, true} {
		file := "/usr/bin/app"
		if kernel {
			file = "[kernel.kallsyms]"
		}
		m := &profile.Mapping{ID: uint64(i + 1), File: file, Start: uint64(i+1) << 32, Limit: uint64(i+2) << 32}
		b.maps[kernel] = m
		b.p.Mapping = append(b.p.Mapping, m)
	}
	return b
}

func (b *profileBuilder) location(frame string) *profile.Location {
	if l, ok := b.locs[frame]; ok {
		return l
	}
	name, kernel := frame, false
	if len(frame) > 2 && frame[:2] == "k:" {
		name, kernel = frame[2:], true
	}
	f := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: name, SystemName: name, Filename: "src/" + name + ".go"}
	if kernel {
		f.Filename = ""
	}
	b.p.Function = append(b.p.Function, f)
	m := b.maps[kernel]
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Mapping: m, Address: m.Start + uint64(len(b.p.Location))*16,
		Line: []profile.Line{{Function: f, Line: int64(len(name))}}}
	b.p.Location = append(b.p.Location, l)
	b.locs[frame] = l
	return l
}

// add records cpuNanos of samples on a root-first stack.
func (b *profileBuilder) add(comm string, pid int64, rootFirst []string, cpuNanos int64) {
	s := &profile.Sample{Value: []int64{max(1, cpuNanos/10_101_010), cpuNanos},
		Label:    map[string][]string{"comm": {comm}, "exe": {"/usr/bin/" + comm}, "cgroup": {"/system.slice/" + comm + ".service"}},
		NumLabel: map[string][]int64{"pid": {pid}, "tid": {pid}}}
	for i := len(rootFirst) - 1; i >= 0; i-- {
		s.Location = append(s.Location, b.location(rootFirst[i]))
	}
	b.p.Sample = append(b.p.Sample, s)
}

// knownData is what fillStore wrote: the ranges and the expected shares.
type knownData struct {
	targetFrom, targetTo, baseFrom, wideFrom, wideTo time.Time
	hotShare                                         float64 // api.hotLoop's share of the target range
	wideNodes                                        int
}

// fillStore writes 30 minutes of base intervals, then 30 minutes of target
// ones ending 10 minutes ago (so the flame-graph cache may keep them), the
// recorded fixtures inside both, and a range two hours earlier with a call
// tree of over 60,000 nodes.
func fillStore(t testing.TB, store *storage.Store) knownData {
	t.Helper()
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	k := knownData{targetTo: end, targetFrom: end.Add(-30 * time.Minute), baseFrom: end.Add(-60 * time.Minute)}
	var hot, total int64
	// 10-second intervals, as the daemon writes them.
	for iv := range 360 {
		start := k.baseFrom.Add(time.Duration(iv) * 10 * time.Second)
		stacks := baseStacks
		if !start.Before(k.targetFrom) {
			stacks = targetStacks
		}
		b := newProfile(start, 10*time.Second)
		for _, s := range stacks {
			cpu := int64(s.share * float64(minuteCPU) / 6)
			b.add(s.comm, s.pid, s.frames, cpu)
			if !start.Before(k.targetFrom) {
				total += cpu
				if s.frames[len(s.frames)-1] == "api.hotLoop" {
					hot += cpu
				}
			}
		}
		if err := store.Append(ctx, b.p, map[string]string{"host": "test-1"}); err != nil {
			t.Fatal(err)
		}
	}
	fixtures, _ := filepath.Glob("../storage/testdata/record-*.pb.gz")
	if len(fixtures) == 0 {
		t.Fatal("no fixtures in ../storage/testdata")
	}
	for i, name := range fixtures {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := profile.Parse(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{k.baseFrom, k.targetFrom} {
			p.TimeNanos = at.Add(time.Duration(i)*time.Minute + 30*time.Second).UnixNano()
			if err := store.Append(ctx, p, map[string]string{"host": "test-1"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range p.Sample {
			total += s.Value[len(s.Value)-1] // cpu nanoseconds, the last sample type
		}
	}
	k.hotShare = float64(hot) / float64(total)

	// The wide tree: 40 x 40 x 40 leaves under three levels.
	k.wideTo = end.Add(-2 * time.Hour)
	k.wideFrom = k.wideTo.Add(-time.Minute)
	b := newProfile(k.wideFrom, time.Minute)
	for i := range 40 {
		for j := range 40 {
			for l := range 40 {
				b.add("wide", 300, []string{"main.main", "wide.dispatch", fmt.Sprintf("wide.stage%d", i),
					fmt.Sprintf("wide.step%d_%d", i, j), fmt.Sprintf("wide.leaf%d_%d_%d", i, j, l)}, int64(1+(i*7+j*3+l)%13)*10_101_010)
			}
		}
	}
	k.wideNodes = 1 + 2 + 40 + 40*40 + 40*40*40
	if err := store.Append(ctx, b.p, map[string]string{"host": "test-1"}); err != nil {
		t.Fatal(err)
	}
	return k
}
