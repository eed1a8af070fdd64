// Command verifiercost loads the sampler's programs, the unwinder on, and
// prints how many instructions the kernel's verifier processed for each:
// the off-CPU program, which includes the unwinder, runs close to the
// 1M limit. Run as root.
package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/cilium/ebpf"

	"github.com/ember-profiler/ember/bpf"
)

var processed = regexp.MustCompile(`processed \d+ insns[^\n]*`)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "verifiercost:", err)
		os.Exit(1)
	}
}

func run() error {
	spec, err := bpf.LoadSampler()
	if err != nil {
		return err
	}
	if err := spec.Variables["unwind_user"].Set(true); err != nil {
		return fmt.Errorf("set unwind_user: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
	})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			n := len(verr.Log)
			for _, l := range verr.Log[max(0, n-30):] {
				fmt.Fprintln(os.Stderr, l)
			}
		}
		return fmt.Errorf("load: %w", err)
	}
	defer coll.Close()
	for name, prog := range coll.Programs {
		fmt.Printf("%s: %s\n", name, processed.FindString(prog.VerifierLog))
	}
	return nil
}
