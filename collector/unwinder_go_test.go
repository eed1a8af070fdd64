package collector

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/model"
)

var (
	goCallers = []string{"main.goAlpha", "main.goBeta", "main.goGamma"}
	goSplit   = []float64{0.5, 0.3, 0.2}
)

// TestUnwindGoFrameless samples a Go program whose goAlpha, goBeta and
// goGamma (50/30/20% of its CPU) each call a frameless leaf, spin. Walked by
// frame pointers the leaf's caller is lost; walked by .gopclntab's SP
// deltas every spin sample names it, and the callers' shares are within 2
// points of the program's split, stripped or not.
func TestUnwindGoFrameless(t *testing.T) {
	named, _ := filepath.Abs("../testdata/unwind/go-frameless")
	for _, bin := range []string{"go-frameless", "go-frameless-stripped"} {
		t.Run(bin, func(t *testing.T) {
			path, _ := filepath.Abs(filepath.Join("../testdata/unwind", bin))
			// The stripped binary has the same code: the other's symbols name it.
			syms := loadExeSymbols(t, named)
			syms.path = path
			own := filepath.Join(t.TempDir(), "cpu.pb.gz")
			// 7 CPU seconds: the collector's start (the verifier) must not
			// eat the 3 s drained below, loaded or not.
			cmd := startFixture(t, path, "7", own)
			pid := uint32(cmd.Process.Pid)
			c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 999})
			var walked, spin, spinNamed uint64
			cum := map[string]uint64{}
			var others []string
			drainUntilCPU(t, c, pid, 3*time.Second, func(b *model.Batch) {
				for _, s := range b.Samples {
					if s.PID != pid || s.UserLost != model.LostNone || s.UserSource != model.SourceUnwinder {
						continue
					}
					walked += s.Count
					names := syms.names(b.Processes[s.Key()], s.User)
					if len(names) > 0 && names[0] == "main.spin" {
						spin += s.Count
						if len(names) > 1 && strings.HasPrefix(names[1], "main.go") {
							spinNamed += s.Count
						}
					}
					other := true
					for _, fn := range goCallers {
						for _, n := range names {
							if n == fn {
								other = false
							}
						}
					}
					if other && len(others) < 10 {
						others = append(others, fmt.Sprintf("%d %s %d %s", s.Count, s.UserEnd, s.TID, strings.Join(names, ";")))
					}
					for _, fn := range goCallers {
						for _, n := range names {
							if n == fn {
								cum[fn] += s.Count
								break
							}
						}
					}
				}
			})
			if err := cmd.Wait(); err != nil {
				t.Fatalf("fixture: %v", err)
			}
			want, ownSamples := pprofShares(t, own)
			t.Logf("%d samples unwound, %d in main.spin, %d of them with its caller", walked, spin, spinNamed)
			if walked < 300 || spin*2 < walked {
				t.Fatalf("%d samples unwound, %d in main.spin", walked, spin)
			}
			if spinNamed != spin {
				t.Errorf("%d of %d samples in main.spin name its caller, want all", spinNamed, spin)
			}
			// Shares of the three callers' samples: the runtime's own threads
			// and its signal handling (which runtime/pprof cannot see) aside.
			var all uint64
			for _, fn := range goCallers {
				all += cum[fn]
			}
			if all*2 < walked {
				t.Errorf("only %d of %d samples under the three callers; others:\n%s", all, walked, strings.Join(others, "\n"))
			}
			// The program splits its thread's CPU time 50/30/20 by the
			// kernel's clock. runtime/pprof's profile of the same run is
			// logged beside: its own few hundred samples stray up to 3 points
			// from the split idle (and it loses most under load, timer
			// overruns), more than the 2 points asked of Ember.
			// Two points, plus two standard errors of a share of this many
			// samples (0.9 points at 3,000): at 1,265 samples a 52.0% of
			// 50 failed CI on sampling alone.
			for i, fn := range goCallers {
				got := float64(cum[fn]) / float64(all)
				t.Logf("%s: %.1f%% here, %.1f%% in runtime/pprof (%d samples), %.0f%% by design", fn, 100*got, 100*want[fn], ownSamples, 100*goSplit[i])
				bound := 0.02 + 2*math.Sqrt(goSplit[i]*(1-goSplit[i])/float64(all))
				if d := got - goSplit[i]; d > bound || d < -bound {
					t.Errorf("%s: %.1f%% of samples, the program spends %.0f%% there", fn, 100*got, 100*goSplit[i])
				}
			}
		})
	}
}

// pprofShares reads a runtime/pprof CPU profile and returns each of
// goCallers' share of the samples on any of them, and its samples.
func pprofShares(t *testing.T, path string) (map[string]float64, int64) {
	t.Helper()
	p := profiletest.Read(t, path)
	var total int64
	on := map[string]int64{}
	for _, s := range p.Sample {
		total += s.Value[0]
		seen := map[string]bool{}
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && !seen[l.Function.Name] {
					seen[l.Function.Name] = true
					on[l.Function.Name] += s.Value[0]
				}
			}
		}
	}
	if total < 100 {
		t.Fatalf("runtime/pprof profile has %d samples", total)
	}
	var all int64
	for _, fn := range goCallers {
		all += on[fn]
	}
	out := map[string]float64{}
	for _, fn := range goCallers {
		out[fn] = float64(on[fn]) / float64(all)
	}
	return out, total
}

// TestUnwindCgo samples a Go program calling C: the C function runs on the
// g0 stack, and the walk goes back to the goroutine's stack where
// runtime.asmcgocall left it, up to runtime.goexit. (The runtime's own
// switches to g0, runtime.systemstack in exitsyscall after each call, are
// TestUnwindGoSystemStack's.)
func TestUnwindCgo(t *testing.T) {
	path, _ := filepath.Abs("../testdata/unwind/go-cgo")
	syms := loadExeSymbols(t, path)
	cmd := startFixture(t, path, untilKilled)
	pid := uint32(cmd.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 499})
	chain := []string{"cspin", "main.viaC", "main.main", "runtime.main", "runtime.goexit"}
	var walked, hot, good uint64
	var bad []string
	drainUntilCPU(t, c, pid, time.Second, func(b *model.Batch) {
		for _, s := range b.Samples {
			if s.PID != pid || s.UserLost != model.LostNone || s.UserSource != model.SourceUnwinder {
				continue
			}
			walked += s.Count
			names := syms.names(b.Processes[s.Key()], s.User)
			if len(names) == 0 || names[0] != "cspin" {
				continue
			}
			hot += s.Count
			if s.UserEnd == model.UnwindComplete && hasChain(names, chain) {
				good += s.Count
			} else if len(bad) < 5 {
				bad = append(bad, fmt.Sprintf("%s: %s", s.UserEnd, strings.Join(names, ";")))
			}
		}
	})
	t.Logf("%d samples unwound, %d in cspin, %d of them complete with the chain", walked, hot, good)
	if hot < 100 || hot*2 < walked {
		t.Fatalf("%d of %d samples in cspin", hot, walked)
	}
	if good*100 < hot*99 {
		t.Errorf("%d of %d samples in cspin complete; some that are not:\n%s", good, hot, strings.Join(bad, "\n"))
	}
}

// TestUnwindGoSystemStack samples a Go program that spends much of its time
// on the g0 stack: large allocations and the collector's marking under
// runtime.systemstack, stack growth under runtime.morestack. Every sample
// whose walk crosses one of those switches goes on from the goroutine's
// g.sched to runtime.goexit, but for newstack preempting the goroutine,
// which leaves no goroutine to go back to (as in Go's own profiler): those
// end at morestack, under the scheduler.
func TestUnwindGoSystemStack(t *testing.T) {
	path, _ := filepath.Abs("../testdata/unwind/go-gc")
	syms := loadExeSymbols(t, path)
	cmd := startFixture(t, path, untilKilled)
	pid := uint32(cmd.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 499})
	var walked, switched, good, left uint64
	var bad []string
	drainUntilCPU(t, c, pid, 2*time.Second, func(b *model.Batch) {
		for _, s := range b.Samples {
			if s.PID != pid || s.UserLost != model.LostNone || s.UserSource != model.SourceUnwinder {
				continue
			}
			walked += s.Count
			names := syms.names(b.Processes[s.Key()], s.User)
			for i, n := range names {
				names[i] = strings.TrimSuffix(n, ".abi0") // the assembly's symbols
			}
			if !slices.Contains(names, "runtime.systemstack") && !slices.Contains(names, "runtime.morestack") {
				continue
			}
			switched += s.Count
			root := names[len(names)-1]
			switch {
			case s.UserEnd == model.UnwindComplete && root == "runtime.goexit":
				good += s.Count
			case s.UserEnd == model.UnwindComplete && root == "runtime.morestack" && slices.Contains(names, "runtime.schedule"):
				// Preempted in newstack (gopreempt_m, maybe inlined): the
				// goroutine left for the scheduler.
				left += s.Count
			default:
				if len(bad) < 5 {
					bad = append(bad, fmt.Sprintf("%s: %s", s.UserEnd, strings.Join(names, ";")))
				}
			}
		}
	})
	t.Logf("%d samples unwound, %d across a stack switch: %d to runtime.goexit, %d preempted in newstack", walked, switched, good, left)
	if len(bad) > 0 {
		t.Logf("some that are not:\n%s", strings.Join(bad, "\n"))
	}
	if switched < 100 || switched*3 < walked {
		t.Fatalf("%d of %d samples across a stack switch", switched, walked)
	}
	if (good+left)*100 < switched*99 {
		t.Errorf("%d of %d samples across a switch complete; some that are not:\n%s", good+left, switched, strings.Join(bad, "\n"))
	}
}
