package export

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/export/exporttest"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage"
)

// sampleSums describes a profile as the exporters read it: its header and
// the values per labels and stack.
func sampleSums(p *profile.Profile) map[string]int64 {
	out := map[string]int64{profileHeader(p): 1}
	for _, smp := range p.Sample {
		var labels []string
		for k, v := range smp.Label {
			labels = append(labels, fmt.Sprintf("%s=%q", k, v))
		}
		for k, v := range smp.NumLabel {
			labels = append(labels, fmt.Sprintf("%s=#%v", k, v))
		}
		sort.Strings(labels)
		key := fmt.Sprint(labels) + " " + exporttest.PprofStack(smp)
		for i, v := range smp.Value {
			out[fmt.Sprintf("%s %s", key, p.SampleType[i].Type)] += v
		}
	}
	return out
}

// The profile handed over reads as the store returns it: the same types in
// the same order, labels, values and series, whatever the order of the
// types given, with samples of no value left out.
func TestStoredViewIsWhatTheStoreReturns(t *testing.T) {
	offCPU := func(p *profile.Profile) { // off-CPU types first, CPU types last
		p.SampleType = append(schema.ValueTypes(schema.OffCPU, schema.Waits), p.SampleType...)
		for i, smp := range p.Sample {
			smp.Value = append([]int64{int64(i) * 1000, int64(i % 2)}, smp.Value...)
		}
	}
	cases := map[string]func(*profile.Profile){
		"cpu": func(*profile.Profile) {},
		"types reversed": func(p *profile.Profile) {
			p.SampleType[0], p.SampleType[1] = p.SampleType[1], p.SampleType[0]
			for _, smp := range p.Sample {
				smp.Value[0], smp.Value[1] = smp.Value[1], smp.Value[0]
			}
		},
		"off-cpu":           offCPU,
		"string pid, empty": func(p *profile.Profile) { stringPIDs(p); p.Sample[0].Value = []int64{0, 0} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			shared := Share(s)
			p := testInterval(t0, 2)
			change(p)
			if err := s.Append(context.Background(), p, host); err != nil {
				t.Fatal(err)
			}
			shared.Stored(p, host)
			ref := storage.IntervalRef{Key: p.TimeNanos}
			fresh := shared.readFresh(ref)
			if fresh == nil {
				t.Fatal("the interval stored was not handed over")
			}
			stored, err := s.ReadInterval(context.Background(), ref)
			if err != nil {
				t.Fatal(err)
			}
			if d := exporttest.DiffMaps(sampleSums(fresh), sampleSums(stored)); d != "" {
				t.Errorf("the view differs from the store:\n%s", d)
			}
			lp := labelPolicy{service: mustTemplate(t, "{comm}"), keepPID: true}
			var a, b seriesEncoder
			a.reset(fresh)
			b.reset(stored)
			fs, ss := lp.split(fresh), lp.split(stored)
			if len(fs) != len(ss) {
				t.Fatalf("%d series from the view, %d from the store", len(fs), len(ss))
			}
			for i := range fs {
				if fmt.Sprint(fs[i].Labels) != fmt.Sprint(ss[i].Labels) {
					t.Errorf("series %d: labels %v from the view, %v from the store", i, fs[i].Labels, ss[i].Labels)
				}
				pf, err1 := profile.ParseData(a.encode(nil, fs[i].Samples))
				ps, err2 := profile.ParseData(b.encode(nil, ss[i].Samples))
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if d := exporttest.DiffMaps(sampleSums(pf), sampleSums(ps)); d != "" {
					t.Errorf("series %v differs:\n%s", fs[i].Labels, d)
				}
			}
		})
	}
}

func stringPIDs(p *profile.Profile) {
	for _, smp := range p.Sample {
		smp.Label["pid"] = []string{fmt.Sprint(smp.NumLabel["pid"][0])}
		delete(smp.NumLabel, "pid")
	}
}

// An interval the store keyed otherwise (another had its start) is not
// handed over: the exporters read the one stored.
func TestStoredNotHandedOverUnderAnotherKey(t *testing.T) {
	s := openStore(t, t.TempDir())
	shared := Share(s)
	for range 2 {
		p := testInterval(t0, 1)
		if err := s.Append(context.Background(), p, host); err != nil {
			t.Fatal(err)
		}
		shared.Stored(p, host)
	}
	if refs, _ := s.IntervalsAfter(0, 10); len(refs) != 2 || refs[1].Key != t0.UnixNano()+1 {
		t.Fatalf("the store keyed the two intervals %v", refs)
	}
	for _, key := range []int64{t0.UnixNano(), t0.UnixNano() + 1} {
		if p := shared.readFresh(storage.IntervalRef{Key: key}); p != nil {
			t.Errorf("an interval was handed over as %d", key)
		}
	}
}
