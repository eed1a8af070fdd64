package collector

import (
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// dynamicLoader is the host's dynamic loader, whose _dl_debug_state is
// called once a program's libraries are mapped. Programs in containers
// with their own loader are noticed at their first sample instead.
const dynamicLoader = "/lib64/ld-linux-x86-64.so.2"

// loaderProbe is where on_libs_loaded attaches: a loader's
// _dl_debug_state, and how far its _r_debug lies from it.
type loaderProbe struct {
	path            string
	rDebugFromProbe int64
}

// findLoaderProbe reads the two symbols from the loader's dynamic symbols.
func findLoaderProbe(path string) (loaderProbe, error) {
	f, err := elf.Open(path)
	if err != nil {
		return loaderProbe{}, fmt.Errorf("open dynamic loader: %w", err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return loaderProbe{}, fmt.Errorf("dynamic loader %s: %w", path, err)
	}
	var probe, rDebug uint64
	for _, s := range syms {
		switch s.Name {
		case "_dl_debug_state":
			probe = s.Value
		case "_r_debug":
			rDebug = s.Value
		}
	}
	if probe == 0 || rDebug == 0 {
		return loaderProbe{}, fmt.Errorf("dynamic loader %s: no _dl_debug_state or _r_debug", path)
	}
	return loaderProbe{path: path, rDebugFromProbe: int64(rDebug - probe)}, nil
}

// attachLoaderProbe makes the sampler hear of each new image as soon as
// its libraries are mapped, so its tables go in before its first samples.
// Without it (no uprobes, another loader) images are noticed at their
// first sample, as before; that is logged, not an error.
func (c *Collector) attachLoaderProbe(probe loaderProbe) {
	if probe.path == "" {
		return
	}
	ex, err := link.OpenExecutable(probe.path)
	if err == nil {
		var l link.Link
		if l, err = ex.Uprobe("_dl_debug_state", c.objs.OnLibsLoaded, nil); err == nil {
			c.links = append(c.links, l)
			return
		}
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = fmt.Errorf("uprobes not supported: %w", err)
	}
	c.log.Info("new processes are unwound from their first sample on, not before", slog.String("loader", probe.path), slog.Any("err", err))
}
