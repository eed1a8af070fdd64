package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ember-profiler/ember/internal/testenv"
)

const module = "github.com/ember-profiler/ember"

// layers ranks the module's packages by their top folder: a package may
// link only packages of its own rank or lower, so data flows one way.
// Rank 0 are shared leaves that link no stage: the sample model, internal
// helpers, and the browser assets cmd/ember hands to web. A new top folder
// must be given a place here.
var layers = map[string]int{
	"model":      0,
	"schema":     0, // the profile's sample types and labels, shared by every stage
	"internal":   0,
	"ui":         0,
	"bpf":        1,
	"collector":  2,
	"symbolizer": 3,
	"storage":    4,
	"report":     5, // pure computations over profiles, shared by cmd and web
	"pipeline":   5, // drain, name, interval, sinks; for record and daemon
	"export":     5, // reads the store, sends to Pyroscope and OTLP; for the daemon
	"web":        6,
	"cmd":        7,
	"bench":      7,
}

// goPackage is the part of `go list -json` the rules read.
type goPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
}

// graph maps import paths to packages: the module's, and all they link.
type graph map[string]*goPackage

var listOnce = sync.OnceValues(listModule)

// moduleGraph lists the module once per test binary.
func moduleGraph(t *testing.T) graph {
	t.Helper()
	testenv.RequireGoTool(t)
	g, err := listOnce()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func listModule() (graph, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Imports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		g[p.ImportPath] = &p
	}
	return g, nil
}

// pkg returns a package of the module, failing the test if go list did not
// report it.
func (g graph) pkg(t *testing.T, rel string) *goPackage {
	t.Helper()
	p := g[module+"/"+rel]
	if p == nil {
		t.Fatalf("go list did not report package %s", rel)
	}
	return p
}

// chain is the import path from one package to a package it links, for
// failure messages: it says which import to cut.
func (g graph) chain(from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var path []string
			for ; p != ""; p = prev[p] {
				path = append(path, strings.TrimPrefix(p, module+"/"))
			}
			slices.Reverse(path)
			return strings.Join(path, " -> ")
		}
		if pkg := g[p]; pkg != nil {
			for _, imp := range pkg.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return from + " -> ... -> " + to
}

// under reports whether path is prefix or a package below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// TestSymbolizerLinksNoBPF: naming an address needs the batch, ELF files
// and kallsyms, not the BPF object, its loader, or the collector that
// drives them. (Listing loaded BPF program IDs is one raw system call.)
func TestSymbolizerLinksNoBPF(t *testing.T) {
	g := moduleGraph(t)
	sym := g.pkg(t, "symbolizer")
	forbidden := []string{
		module + "/bpf",
		module + "/collector",
		"github.com/cilium/ebpf", // with link and ringbuf below it
	}
	for _, f := range forbidden {
		var linked []string
		for _, dep := range sym.Deps {
			if under(dep, f) {
				linked = append(linked, dep)
			}
		}
		if len(linked) > 0 {
			// Deps are sorted: the first is f itself when it is linked.
			t.Errorf("symbolizer links %s (%d of its packages): %s", f, len(linked), g.chain(sym.ImportPath, linked[0]))
		}
	}
}

// TestModelIsLeaf: the sample model is shared by every stage, so it
// imports nothing but the standard library.
func TestModelIsLeaf(t *testing.T) {
	g := moduleGraph(t)
	m := g.pkg(t, "model")
	for _, dep := range m.Deps {
		if p := g[dep]; p == nil || !p.Standard {
			t.Errorf("model links %s, outside the standard library: %s", dep, g.chain(m.ImportPath, dep))
		}
	}
}

// TestStagesLinkOnlyEarlierStages: bpf -> collector -> symbolizer ->
// storage -> web -> cmd, with shared leaves below all (see layers).
func TestStagesLinkOnlyEarlierStages(t *testing.T) {
	g := moduleGraph(t)
	var checked int
	for path, p := range g {
		rank, ok := rankOf(path)
		if !ok {
			continue // outside the module
		}
		if rank < 0 {
			t.Errorf("%s has no place in the layering: give its top folder a rank in layers", path)
			continue
		}
		checked++
		for _, dep := range p.Deps {
			depRank, ok := rankOf(dep)
			if ok && depRank > rank {
				t.Errorf("%s links a later stage, %s: %s", path, dep, g.chain(path, dep))
			}
		}
	}
	if checked == 0 {
		t.Fatal("go list reported none of the module's packages")
	}
}

// rankOf returns the layer of a package of the module (-1 for a top
// folder missing from layers); ok is false outside the module.
func rankOf(path string) (rank int, ok bool) {
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return 0, false
	}
	top, _, _ := strings.Cut(rel, "/")
	rank, known := layers[top]
	if !known {
		return -1, true
	}
	return rank, true
}

// TestPipelineLinksNoStage: the pipeline meets the collector, the
// symbolizer and its sinks through small interfaces, so its loop is tested
// with fakes and links none of them (nor web, which comes after it).
func TestPipelineLinksNoStage(t *testing.T) {
	g := moduleGraph(t)
	p := g.pkg(t, "pipeline")
	for _, stage := range []string{"bpf", "collector", "symbolizer", "storage", "web"} {
		for _, dep := range p.Deps {
			if under(dep, module+"/"+stage) {
				t.Errorf("pipeline links %s: %s", stage, g.chain(p.ImportPath, dep))
				break
			}
		}
	}
}

// TestWebLinksNoBadger: web reaches history through storage's query seam,
// not Badger itself.
func TestWebLinksNoBadger(t *testing.T) {
	g := moduleGraph(t)
	web := g.pkg(t, "web")
	const badger = "github.com/dgraph-io/badger/v4"
	if slices.Contains(web.Deps, badger) {
		t.Errorf("web links %s: %s", badger, g.chain(web.ImportPath, badger))
	}
}
