// Command verifierstats loads the sampler's programs one by one and prints
// how many instructions the verifier processed for each, and how long it
// took: the margin left under the kernel's limit of one million. Needs root.
//
//	go run ./bench/verifierstats
package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ember-profiler/ember/bpf"
)

var processed = regexp.MustCompile(`processed (\d+) insns`)

func main() {
	spec, err := bpf.LoadSampler()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The sampler's loader sets these before loading; the verifier walks
	// what they leave in.
	for name, v := range map[string]any{"unwind_user": true} {
		if vs, ok := spec.Variables[name]; ok {
			if err := vs.Set(v); err != nil {
				fmt.Fprintln(os.Stderr, name, err)
			}
		}
	}
	names := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	failed := false
	for _, name := range names {
		one := spec.Copy()
		for n := range one.Programs {
			if n != name {
				delete(one.Programs, n)
			}
		}
		start := time.Now()
		coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
			Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
		})
		took := time.Since(start)
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) && len(ve.Log) > 0 {
				fmt.Printf("%-24s FAILED after %v: %s\n", name, took.Round(time.Millisecond), ve.Log[len(ve.Log)-1])
			} else {
				fmt.Printf("%-24s FAILED after %v: %v\n", name, took.Round(time.Millisecond), err)
			}
			failed = true
			continue
		}
		log := coll.Programs[name].VerifierLog
		insns := "?"
		if m := processed.FindStringSubmatch(log); m != nil {
			insns = m[1]
		}
		fmt.Printf("%-24s %9s insns processed, loaded in %v\n", name, insns, took.Round(time.Millisecond))
		coll.Close()
	}
	if failed {
		os.Exit(1)
	}
}
