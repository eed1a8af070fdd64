package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/schema"
)

// `record --type offcpu -- CMD` writes a profile of time off the CPU that
// opens on it: the waits fixture's time in nanosleep and in a pipe read
// come out under their functions in the split it measured, labelled
// sleeping, and `go tool pprof -sample_index=offcpu` reads the file.
func TestRecordOffCPU(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	out, measured := filepath.Join(dir, "out.pb.gz"), filepath.Join(dir, "waits.out")
	waits, _ := filepath.Abs("../../testdata/offcpu/waits")
	var stderr bytes.Buffer
	opts := recordOptions{duration: time.Minute, untilExit: true, drainInterval: time.Second, output: out,
		format: "pprof", command: []string{waits, "2", measured}, profileType: profileOffCPU,
		collector: collector.Config{FrequencyHz: 99, OffCPUMinWait: collector.DefaultOffCPUMinWait}}
	if err := opts.validate(); err != nil {
		t.Fatal(err)
	}
	if err := record(context.Background(), opts, &stderr); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", stderr.String())
	raw, err := os.ReadFile(measured)
	if err != nil {
		t.Fatal(err)
	}
	var tid, sleepNs, pipeNs, wallNs, onCPUNs int64
	if _, err := fmt.Sscan(string(raw), &tid, &sleepNs, &pipeNs, &wallNs, &onCPUNs); err != nil {
		t.Fatalf("waits wrote %q: %v", raw, err)
	}

	p := profiletest.Read(t, out)
	if p.DefaultSampleType != schema.OffCPU.Type {
		t.Errorf("default sample type %q, want offcpu", p.DefaultSampleType)
	}
	var types []string
	for _, st := range p.SampleType {
		types = append(types, schema.Of(st).String())
	}
	if got := strings.Join(types, " "); got != "samples/count cpu/nanoseconds offcpu/nanoseconds waits/count" {
		t.Fatalf("sample types %q", got)
	}
	var sleep, pipe, sleeping int64
	for _, s := range p.Sample {
		if len(s.NumLabel["tid"]) == 0 || s.NumLabel["tid"][0] != tid {
			continue
		}
		chain := userChain(s)
		switch {
		case slices.Contains(chain, "sleep_part"):
			sleep += s.Value[2]
		case slices.Contains(chain, "pipe_part"):
			pipe += s.Value[2]
		}
		if slices.Equal(s.Label[schema.LabelThreadState], []string{"sleeping"}) {
			sleeping += s.Value[2]
		}
	}
	// Waits before the process's unwind tables are in lose their
	// functions (a cut stack), which on a loaded host is a good part of a
	// short run (TestOffCPUTruth, which waits for the tables, checks the
	// times to 5%): here each function has at least half of its measured
	// time off the CPU, and at most 15% more (a preemption in the
	// function's own code, outside the wait its clock times, counts too:
	// 5.5% in CI's first run).
	t.Logf("sleep_part %s, pipe_part %s off CPU (measured %s, %s); sleeping %s",
		time.Duration(sleep), time.Duration(pipe), time.Duration(sleepNs), time.Duration(pipeNs), time.Duration(sleeping))
	for _, f := range []struct {
		name      string
		got, want int64
	}{{"sleep_part", sleep, sleepNs}, {"pipe_part", pipe, pipeNs}} {
		if f.got < f.want/2 || float64(f.got) > 1.15*float64(f.want) {
			t.Errorf("%s: %s off the CPU, measured %s", f.name, time.Duration(f.got), time.Duration(f.want))
		}
	}
	if sleeping < (sleep+pipe)*9/10 {
		t.Errorf("only %s of %s labelled thread_state=sleeping", time.Duration(sleeping), time.Duration(sleep+pipe))
	}

	goTool := testenv.RequireGoTool(t)
	top, err := exec.Command(goTool, "tool", "pprof", "-top", "-sample_index=offcpu", out).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, top)
	}
	if !strings.Contains(string(top), "Type: offcpu") || !strings.Contains(string(top), "__schedule") {
		t.Errorf("go tool pprof -sample_index=offcpu:\n%s", top)
	}
}

// --type takes cpu, offcpu or both, and nothing else.
func TestRecordTypeFlag(t *testing.T) {
	for typ, want := range map[string]collector.Config{
		"cpu": {}, "offcpu": {OffCPU: true, NoCPU: true}, "both": {OffCPU: true},
	} {
		o := recordOptions{duration: time.Second, drainInterval: time.Second, format: "pprof", profileType: typ,
			collector: collector.Config{FrequencyHz: 99}}
		if err := o.validate(); err != nil {
			t.Errorf("--type %s: %v", typ, err)
		}
		if o.collector.OffCPU != want.OffCPU || o.collector.NoCPU != want.NoCPU {
			t.Errorf("--type %s: off-CPU %v, no CPU %v", typ, o.collector.OffCPU, o.collector.NoCPU)
		}
	}
	o := recordOptions{duration: time.Second, drainInterval: time.Second, format: "pprof", profileType: "wall",
		collector: collector.Config{FrequencyHz: 99}}
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "--type") {
		t.Errorf("--type wall: %v", err)
	}
}
