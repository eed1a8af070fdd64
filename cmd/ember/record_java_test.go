package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/internal/testenv"
)

// A JVM run with -XX:+DumpPerfMapAtExit writes /tmp/perf-PID.map only as
// it exits, after most of its samples were drained: `record -- java` holds
// those samples and names their JIT frames from that map.
func TestRecordJavaPerfMapAtExit(t *testing.T) {
	testenv.RequireBPF(t)
	java, err := exec.LookPath("java")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no java on PATH (Java 17 is needed for this test)")
		}
		t.Skip("no java on PATH")
	}
	classes, _ := filepath.Abs("../../testdata/java")
	out := filepath.Join(t.TempDir(), "out.pb.gz")
	var stderr bytes.Buffer
	err = record(context.Background(), recordOptions{duration: 2 * time.Minute, untilExit: true, drainInterval: 500 * time.Millisecond,
		output: out, format: "pprof",
		command: []string{java, "-XX:+UnlockDiagnosticVMOptions", "-XX:+DumpPerfMapAtExit", "-XX:+PreserveFramePointer",
			"-cp", classes, "Hot", "3"},
		collector: collector.Config{FrequencyHz: 199}}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", stderr.String())
	p := profiletest.Read(t, out)
	var total, spin, unnamed int64
	pids := map[int64]bool{}
	for _, s := range p.Sample {
		total += s.Value[0]
		pids[s.NumLabel["pid"][0]] = true
		for _, loc := range s.Location {
			name := loc.Line[0].Function.Name
			if strings.Contains(name, "Hot.spin") {
				spin += s.Value[0]
				break
			}
			if strings.HasPrefix(name, "[unknown in [anon]") {
				unnamed += s.Value[0]
				t.Logf("unnamed JIT frame: %s", name)
				break
			}
		}
	}
	for pid := range pids {
		os.Remove(fmt.Sprintf("/tmp/perf-%d.map", pid))
	}
	t.Logf("%d samples: %d in Hot.spin, %d with an unnamed JIT frame", total, spin, unnamed)
	// A floor, not a rate: under CI's load the JVM got 93 samples.
	if total < 40 {
		t.Fatalf("only %d samples", total)
	}
	// The rest is the JVM's start, its compilers and its interpreter.
	if spin*2 < total {
		t.Errorf("%d of %d samples in Hot.spin, want most", spin, total)
	}
	if unnamed*50 > total {
		t.Errorf("%d of %d samples with an unnamed JIT frame", unnamed, total)
	}
}
