package ui_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/web"
)

// TestBrowserIncident checks the page against issue 21's findings on a
// small busy host (incidentProcs): process identity, zoom and clicks that
// land where the user clicked, colours by kind, markers explained, and
// numbers that cannot exceed the host.
func TestBrowserIncident(t *testing.T) {
	chromium := testenv.RequireChromium(t)
	store := openStore(t, t.TempDir())
	r := fillIncident(t, store)
	var sw switchable
	base := sw.serve(t, web.FromStorage(store), web.Limits{})
	b := newBrowser(t, chromium)
	rng := "from=" + rfc(r.from) + "&to=" + rfc(r.to)

	// firstLevel is the names under the drawn root, left to right.
	firstLevel := func(t *testing.T) []string {
		var names []string
		b.eval(t, `__ember.flame.boxes().filter(b => b.depth === 1).map(b => b.name)`, &names)
		return names
	}
	// binaryOf is the binary of the drawn box named name at depth.
	boxWhere := func(t *testing.T, name, binary string) box {
		t.Helper()
		var bx *box
		b.eval(t, fmt.Sprintf(`(() => { const f = __ember.flame; return f.boxes().find(b => b.name === %q && f.tree.binaryOf(b.node) === %q) || null; })()`, name, binary), &bx)
		if bx == nil {
			t.Fatalf("no box %s in %s drawn", name, binary)
		}
		return *bx
	}
	focusBinary := func(t *testing.T) string {
		var bin string
		b.eval(t, `__ember.flame.tree.binaryOf(__ember.flame.focus)`, &bin)
		return bin
	}
	hover := func(t *testing.T, bx box) string {
		t.Helper()
		var c struct{ Left, Top float64 }
		b.eval(t, `(() => { const r = __ember.flame.canvas.getBoundingClientRect(); return {left: r.left, top: r.top}; })()`, &c)
		b.run(t, chromedp.MouseEvent(input.MouseMoved, c.Left+bx.X+bx.W/2, c.Top+float64(bx.Depth)*18+9))
		b.waitFor(t, `!document.querySelector("#tooltip").hidden`)
		var tip string
		b.run(t, chromedp.Text("#tooltip", &tip))
		b.run(t, chromedp.MouseEvent(input.MouseMoved, 2, 2))
		return tip
	}

	t.Run("processes first", func(t *testing.T) {
		b.open(t, base, rng)
		got := strings.Join(firstLevel(t), ",")
		if got != "server,python3,node,deep" {
			t.Errorf("first level %s, want the processes server,python3,node,deep", got)
		}
		tip := hover(t, b.box(t, "flame", "server"))
		for _, want := range []string{"process", "comm", "server", "pid", "10, 11", "/usr/sbin/server"} {
			if !strings.Contains(tip, want) {
				t.Errorf("the process's tooltip %q lacks %q", tip, want)
			}
		}
		var kinds string
		b.run(t, chromedp.Text("#kinds", &kinds))
		for _, want := range []string{"process", "native", "JIT", "marker"} {
			if !strings.Contains(kinds, want) {
				t.Errorf("colour key %q lacks %q", kinds, want)
			}
		}
		// Switched off: the programs' own roots, as the stacks have them.
		b.run(t, chromedp.SetValue("#flame-by", "none", chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelector("#flame-by").dispatchEvent(new Event("change"))`, nil))
		b.waitFor(t, `__ember.state().by === "none" && __ember.ready && __ember.flame.tree.groupBy === ""`)
		b.run(t, chromedp.Sleep(50*time.Millisecond))
		if got := strings.Join(firstLevel(t), ","); !strings.HasPrefix(got, "_start,_start,") {
			t.Errorf("ungrouped first level %s, want the programs' _start frames", got)
		}
		b.noErrors(t)
	})

	t.Run("zoom lands where clicked", func(t *testing.T) {
		// Without grouping, four _start frames are siblings: clicking
		// python's must zoom into python's, in a link and after Back too.
		b.open(t, base, rng+"&by=none")
		b.clickBox(t, boxWhere(t, "_start", "/usr/bin/python3.11"))
		b.waitFor(t, `__ember.state().focus === "_start @python3.11"`)
		if bin := focusBinary(t); bin != "/usr/bin/python3.11" {
			t.Errorf("zoomed into _start of %s, want python's", bin)
		}
		b.clickBox(t, boxWhere(t, "main", "/usr/bin/python3.11"))
		b.waitFor(t, `__ember.state().focus === "_start @python3.11;main @python3.11"`)
		var loc string
		b.eval(t, "location.search", &loc)
		b.open(t, base, strings.TrimPrefix(loc, "?")) // the link
		if bin := focusBinary(t); bin != "/usr/bin/python3.11" {
			t.Errorf("the link zooms into main of %s, want python's", bin)
		}
		b.run(t, chromedp.NavigateBack())
		b.waitFor(t, `__ember.state().focus === "_start @python3.11" && __ember.ready`)
		b.run(t, chromedp.Sleep(50*time.Millisecond))
		if bin := focusBinary(t); bin != "/usr/bin/python3.11" {
			t.Errorf("Back zooms into _start of %s, want python's", bin)
		}
		b.noErrors(t)
	})

	t.Run("table rows by function and binary", func(t *testing.T) {
		b.open(t, base, rng+"&view=table")
		var mains []string
		b.eval(t, `__ember.table.filter(r => r.name === "main").map(r => r.binary)`, &mains)
		if len(mains) != 3 {
			t.Errorf("main rows for %q, want one per program with a main (3)", mains)
		}
		// Clicking python's main row zooms into python's main, and marks
		// no other program's.
		b.eval(t, `(() => { const i = __ember.table.findIndex(r => r.key === "main @python3.11"); document.querySelector('#top-table tr[data-i="' + i + '"] td').click(); return i; })()`, nil)
		b.waitFor(t, `__ember.state().fn === "main @python3.11" && __ember.ready`)
		b.run(t, chromedp.Sleep(50*time.Millisecond))
		if bin := focusBinary(t); bin != "/usr/bin/python3.11" {
			t.Errorf("the row zoomed into main of %q, want python's", bin)
		}
		var marked []string
		b.eval(t, `(() => { const f = __ember.flame, t = f.tree, out = []; for (let i = 0; i < t.n; i++) if (f.marks && f.marks[i]) out.push(t.keyOf(i)); return out; })()`, &marked)
		if strings.Join(marked, ",") != "main @python3.11" {
			t.Errorf("marked %q, want python's main only", marked)
		}
		// The sandwich of node's main: run in node and run in JIT code are
		// two callees.
		b.open(t, base, rng+"&view=sandwich&fn="+strings.ReplaceAll("main @node", " ", "+"))
		var callees []string
		b.eval(t, `(() => { const t = __ember.callees.tree, out = []; for (let i = 1; i < t.n; i++) out.push(t.keyOf(i)); return out.sort(); })()`, &callees)
		if strings.Join(callees, ",") != "run @anon,run @node" {
			t.Errorf("callees of node's main %q, want run (JIT) and run @node", callees)
		}
		b.noErrors(t)
	})

	t.Run("colours by kind", func(t *testing.T) {
		b.open(t, base, rng+"&by=none")
		var kinds []string
		b.eval(t, `(() => { const f = __ember.flame, t = f.tree, out = []; for (let i = 1; i < t.n; i++) if (t.nameOf(i) === "run") out.push(f.kindOf(i) + " " + f.colourOf(i, false)); return out.sort(); })()`, &kinds)
		if len(kinds) != 2 || !strings.HasPrefix(kinds[0], "jit ") || !strings.HasPrefix(kinds[1], "native ") {
			t.Errorf("run in JIT code and in node: %q, want a JIT and a native colour", kinds)
		}
		b.noErrors(t)
	})

	t.Run("markers explained", func(t *testing.T) {
		b.open(t, base, rng+"&by=none")
		tip := hover(t, b.box(t, "flame", "[truncated]"))
		if !strings.Contains(tip, "stack walk stopped") {
			t.Errorf("[truncated]'s tooltip %q does not say what it is", tip)
		}
		var href string
		b.eval(t, `document.querySelector("#kinds a").href`, &href)
		if !strings.Contains(href, "docs/markers.md") {
			t.Errorf("the colour key links to %q, want the markers' docs", href)
		}
		b.noErrors(t)
	})

	t.Run("flame mode shows the roots", func(t *testing.T) {
		b.open(t, base, rng)
		b.run(t, chromedp.Focus("#flame canvas", chromedp.ByQuery), chromedp.KeyEvent("o"))
		b.waitFor(t, `__ember.state().orient === "flame"`)
		b.run(t, chromedp.Sleep(100*time.Millisecond))
		var visible bool
		b.eval(t, `(() => { const f = __ember.flame, c = f.container.getBoundingClientRect(), cv = f.canvas.getBoundingClientRect();
			const rootY = cv.top + f.drawn.yOf(0); return rootY >= c.top && rootY + 18 <= c.bottom + 1; })()`, &visible)
		if !visible {
			t.Error("in flame mode the root is drawn outside the panel's view")
		}
		b.noErrors(t)
	})
	t.Run("timeline by keeps the flame graph", func(t *testing.T) {
		b.open(t, base, rng)
		var asked, series int
		b.eval(t, `__ember.flameQueries.length`, &asked)
		b.eval(t, `__ember.seriesLoads`, &series)
		b.run(t, chromedp.SetValue("#group-by", "pid", chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelector("#group-by").dispatchEvent(new Event("change"))`, nil))
		b.waitFor(t, fmt.Sprintf(`__ember.seriesLoads > %d && __ember.ready`, series))
		var after int
		b.eval(t, `__ember.flameQueries.length`, &after)
		if after != asked {
			t.Errorf("changing the timeline's grouping asked for %d flame graphs", after-asked)
		}
		b.noErrors(t)
	})

	t.Run("timeline within the host", func(t *testing.T) {
		// An hour, half of it empty: 2.00 cores flat where there is data.
		b.open(t, base, "from="+rfc(r.emptyFrom)+"&to="+rfc(r.to))
		b.waitFor(t, `__ember.timeline.total && __ember.timeline.total.series.length > 0`)
		var got struct {
			CPUs     int
			Max, Min float64
		}
		b.eval(t, `(() => { const tl = __ember.timeline, pts = tl.total.series[0].points.map(p => p[1]).filter(v => v > 0);
			return {cpus: tl.total.cpus || 0, max: Math.max(...pts), min: Math.min(...pts)}; })()`, &got)
		if got.CPUs != 2 || got.Max > 2.001 || got.Min < 1.999 {
			t.Errorf("2 busy CPUs drawn as %.2f to %.2f cores (host CPUs %d), want 2.00", got.Min, got.Max, got.CPUs)
		}
		// Whatever the series says, the plot stays within the host and
		// says why a step was cut.
		var drawn struct {
			Top  float64
			Note string
		}
		b.eval(t, `(() => { const tl = __ember.timeline, s = structuredClone(tl.total);
			s.series[0].points[3][1] = 15.6; tl.set(s, null);
			return {top: tl.maxY, note: document.querySelector("#timeline-note").textContent}; })()`, &drawn)
		if drawn.Top > 2.5 || !strings.Contains(drawn.Note, "above the host's 2 CPUs") {
			t.Errorf("a 15.6-core step: axis to %.1f, note %q", drawn.Top, drawn.Note)
		}
		b.noErrors(t)
	})

	t.Run("empty range", func(t *testing.T) {
		// Before any data: no 400 for the grouped timeline, and an axis
		// at the host's scale.
		b.open(t, base, "from="+rfc(r.emptyFrom.Add(-time.Hour))+"&to="+rfc(r.emptyFrom)+"&group=comm")
		b.waitFor(t, `__ember.seriesLoads > 0`)
		var top float64
		b.eval(t, `__ember.timeline.maxY`, &top)
		if top != 2 {
			t.Errorf("an empty range's axis goes to %v, want the host's 2 CPUs", top)
		}
		b.noErrors(t)
	})

	t.Run("failures keep the view and recover", func(t *testing.T) {
		b.open(t, base, rng)
		n := b.loads(t)
		sw.down.Store(true)
		b.run(t, chromedp.KeyEvent("r"))
		b.waitFor(t, `!document.querySelector("#banner").hidden && document.querySelector("#banner").textContent.includes("does not answer")`)
		var drawn int
		b.eval(t, `document.querySelector("#flame-panel").hidden ? 0 : __ember.flame.boxes().length`, &drawn)
		if drawn == 0 {
			t.Error("the flame graph went away when the daemon stopped answering")
		}
		sw.down.Store(false)
		// Nothing pressed: the page tries again by itself.
		b.waitFor(t, fmt.Sprintf(`__ember.loads > %d && document.querySelector("#banner").hidden`, n))
		b.takeErrors() // the failed loads
	})

	t.Run("a failed first load keeps the range", func(t *testing.T) {
		sw.down.Store(true)
		b.run(t, chromedp.Navigate(base+"/?from=now-3h"))
		b.waitFor(t, `__ember.retrying === true`)
		var from, to string
		b.eval(t, `document.querySelector("#from").value`, &from)
		b.eval(t, `document.querySelector("#to").value`, &to)
		if from != "now-3h" || to != "now" {
			t.Errorf("after a failed first load From/To read %q/%q", from, to)
		}
		sw.down.Store(false)
		b.waitLoads(t, 0)
		b.takeErrors()
	})

	t.Run("within the daemon's two queries", func(t *testing.T) {
		// Each query takes a while and a third at once is turned away:
		// the page's own requests must never be.
		var busy switchable
		slowBase := busy.serve(t, slowQueries{web.FromStorage(store), 300 * time.Millisecond}, web.Limits{MaxConcurrentQueries: 2, QueueWait: -1})
		b.open(t, slowBase, rng+"&view=diff&group=comm")
		b.waitFor(t, `__ember.diff && __ember.seriesLoads > 0`)
		if n := busy.tooMany.Load(); n > 0 {
			t.Errorf("the page's own requests got %d 429s", n)
		}
		b.noErrors(t)
	})

	t.Run("contrast", func(t *testing.T) {
		// WCAG AA (4.5:1) for every box's label, dimmed ones (a search
		// that does not match them) included, and the page's own text.
		b.open(t, base, rng)
		for _, theme := range []string{"light", "dark"} {
			b.run(t, chromedp.Evaluate(`localStorage.setItem("ember-theme", "`+theme+`")`, nil))
			b.open(t, base, rng+"&search=serve")
			var worst struct {
				Ratio float64
				What  string
			}
			b.eval(t, `(() => {
				const c = document.createElement("canvas").getContext("2d");
				const rgb = (col) => { c.fillStyle = "#000"; c.fillStyle = col; const h = c.fillStyle; return [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16) / 255); };
				const lum = (col) => rgb(col).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
				const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
				const css = (v) => getComputedStyle(document.documentElement).getPropertyValue(v).trim();
				const f = __ember.flame, pairs = [];
				for (const b of f.boxes()) {
					const dimmed = f.marks && !f.marks[b.node];
					pairs.push([b.name, dimmed ? css("--dim") : f.colourOf(b.node, css("color-scheme") === "dark"), dimmed ? css("--dim-text") : css("--box-text")]);
				}
				for (const [fg, bg] of [["--fg", "--bg"], ["--muted", "--bg"], ["--muted", "--bg2"], ["--error", "--bg2"], ["--focus", "--bg"], ["--accent-fg", "--accent"]]) pairs.push([fg + " on " + bg, css(bg), css(fg)]);
				let worst = {ratio: 99, what: ""};
				for (const [what, bg, fg] of pairs) { const r = ratio(bg, fg); if (r < worst.ratio) worst = {ratio: r, what: what + " " + bg + "/" + fg}; }
				return worst;
			})()`, &worst)
			if worst.Ratio < 4.5 {
				t.Errorf("%s theme: %s has contrast %.2f:1, want at least 4.5:1", theme, worst.What, worst.Ratio)
			}
		}
		b.run(t, chromedp.Evaluate(`localStorage.removeItem("ember-theme")`, nil))
		b.noErrors(t)
	})

	t.Run("diff colours show small changes", func(t *testing.T) {
		// One frame grew by 40 points, another by 2: the small change is
		// still clearly red, not grey.
		b.open(t, base, rng)
		var sat float64
		b.run(t, chromedp.Evaluate(`(async () => {
			const { Tree, diffTree } = await import(new URL("ui/js/tree.js", location.href).href);
			const s = ["", "root", "big", "small", "rest"];
			const after = new Tree(s, [-1, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0], [0, 60, 12, 28], [100, 60, 12, 28]);
			const before = new Tree(s, [-1, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0], [0, 20, 10, 70], [100, 20, 10, 70]);
			const d = diffTree(after, before), f = __ember.flame, saved = f.tree;
			f.setTree(d);
			const c = f.colourOf(d.findPath(["small"]), false);
			f.setTree(saved);
			return +c.split(" ")[1].replace("%", "");
		})()`, &sat, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if sat < 40 {
			t.Errorf("a +2 pt change beside a +40 pt one is drawn at %.0f%% saturation, want it visible (40%% or more)", sat)
		}
	})

	t.Run("phone", func(t *testing.T) {
		b.run(t, emulation.SetDeviceMetricsOverride(390, 844, 3, true))
		b.open(t, base, rng)
		var fit struct {
			Scroll, Client int
			ApplyRight     float64
		}
		b.eval(t, `({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
			applyRight: document.querySelector("#custom-range button").getBoundingClientRect().right})`, &fit)
		if fit.Scroll > fit.Client || fit.ApplyRight > 390 {
			t.Errorf("at 390 px the page is %d px wide, Apply ends at %.0f px", fit.Scroll, fit.ApplyRight)
		}
		b.screenshot(t, "phone")
		b.run(t, emulation.ClearDeviceMetricsOverride())
		b.noErrors(t)
	})

	t.Run("label explorer", func(t *testing.T) {
		b.open(t, base, rng+"&view=labels")
		b.waitFor(t, `__ember.labels && __ember.labels.length > 0`)
		var rows []struct {
			Value string
			Share float64
		}
		b.eval(t, `__ember.labels`, &rows)
		got := map[string]float64{}
		for _, r := range rows {
			got[r.Value] = r.Share
		}
		if math.Abs(got["server"]-0.55) > 0.01 || math.Abs(got["python3"]-0.30) > 0.01 {
			t.Errorf("shares %v, want server 0.55 and python3 0.30", got)
		}
		b.run(t, chromedp.Click(`#labels-table tr[data-i="0"]`, chromedp.ByQuery))
		b.waitFor(t, `__ember.state().query === '{comm="server"}' && __ember.ready`)
		b.noErrors(t)
	})

	t.Run("focus and ignore", func(t *testing.T) {
		b.open(t, base, rng+"&ffocus="+url.QueryEscape("^_PyEval"))
		if got := strings.Join(firstLevel(t), ","); got != "python3" {
			t.Errorf("focus on _PyEval: first level %s, want python3 alone", got)
		}
		b.open(t, base, rng+"&fignore="+url.QueryEscape("^serve$"))
		var names []string
		b.eval(t, `__ember.flame.boxes().map(b => b.name)`, &names)
		for _, n := range names {
			if n == "serve" {
				t.Error("serve drawn though ignored")
			}
		}
		var share float64
		b.eval(t, `__ember.flame.tree.grandTotal / __ember.tree().grandTotal`, &share)
		if math.Abs(share-0.45) > 0.01 {
			t.Errorf("ignoring serve leaves %.2f of the total, want 0.45", share)
		}
		b.noErrors(t)
	})

	t.Run("side by side", func(t *testing.T) {
		half := r.from.Add(15 * time.Minute)
		b.open(t, base, "from="+rfc(half)+"&to="+rfc(r.to)+"&view=diff&sbs=1&base_from="+rfc(r.from)+"&base_to="+rfc(half))
		b.waitFor(t, `__ember.diff && __ember.baseFlame.tree && __ember.ready`)
		b.run(t, chromedp.Sleep(100*time.Millisecond))
		var got struct{ Target, Base, Diff int }
		b.eval(t, `({target: __ember.flame.boxes().length, base: __ember.baseFlame.boxes().length, diff: __ember.flame.diff ? 1 : 0})`, &got)
		if got.Target == 0 || got.Base == 0 || got.Diff != 0 {
			t.Errorf("side by side: %d and %d boxes drawn, merged diff %d; want two graphs of their own", got.Target, got.Base, got.Diff)
		}
		b.noErrors(t)
	})

	t.Run("sibling order", func(t *testing.T) {
		// The first level's boxes left to right: heaviest first by default
		// (left heavy), by name with order=name or the n key.
		firstLevel := `(() => { const t = __ember.flame.tree, out = [];
			for (let c = 1; c < t.end[0]; c = t.end[c]) out.push(c);
			return out.sort((a, b) => t.x[a] - t.x[b]).map((c) => [t.nameOf(c), t.total[c]]); })()`
		type box struct {
			Name  string
			Total float64
		}
		read := func() []box {
			var raw [][2]any
			b.eval(t, firstLevel, &raw)
			out := make([]box, len(raw))
			for i, r := range raw {
				out[i] = box{r[0].(string), r[1].(float64)}
			}
			return out
		}
		b.open(t, base, rng)
		b.waitFor(t, `__ember.flame.tree && __ember.ready`)
		heavy := read()
		for i := 1; i < len(heavy); i++ {
			if heavy[i].Total > heavy[i-1].Total {
				t.Fatalf("left heavy: %v is right of the lighter %v", heavy[i], heavy[i-1])
			}
		}
		b.run(t, chromedp.KeyEvent("n"))
		b.waitFor(t, `__ember.state().order === "name"`)
		b.run(t, chromedp.Sleep(100*time.Millisecond))
		byName := read()
		if len(byName) != len(heavy) || len(byName) < 3 {
			t.Fatalf("by name: %v, heaviest first: %v", byName, heavy)
		}
		for i := 1; i < len(byName); i++ {
			if byName[i].Name != "(other)" && byName[i].Name < byName[i-1].Name {
				t.Errorf("by name: %q is right of %q", byName[i].Name, byName[i-1].Name)
			}
		}
		b.noErrors(t)
	})

	t.Run("source lines", func(t *testing.T) {
		b.open(t, base, rng+"&view=sandwich&fn="+url.QueryEscape("serve @server"))
		b.waitFor(t, `__ember.lines && __ember.lines.length > 0`)
		var lines []struct{ Line, Self, Total float64 }
		b.eval(t, `__ember.lines`, &lines)
		// Every frame of the fixture is at line 1: all of serve's time.
		if len(lines) != 1 || lines[0].Line != 1 || lines[0].Self != lines[0].Total {
			t.Errorf("serve's lines %+v, want line 1 with all of its time, self", lines)
		}
		// Its file is on this host: the text is shown beside the costs.
		var rows []string
		b.eval(t, `[...document.querySelectorAll("#lines-table tbody tr")].map(r => r.cells[0].textContent + "|" + r.cells[4].textContent)`, &rows)
		if len(rows) < 2 || rows[0] != "1|package ui_test" {
			t.Errorf("source rows %q, want line 1 reading %q and the lines after it", rows, "package ui_test")
		}
		b.noErrors(t)
	})
}

// slowQueries takes delay over every profile and series, inside the
// daemon's bound on concurrent queries.
type slowQueries struct {
	web.Store
	delay time.Duration
}

func (s slowQueries) Profile(ctx context.Context, from, to time.Time, sel string) (*profile.Profile, error) {
	time.Sleep(s.delay)
	return s.Store.Profile(ctx, from, to, sel)
}

func (s slowQueries) LabelledProfile(ctx context.Context, from, to time.Time, sel string) (*profile.Profile, error) {
	time.Sleep(s.delay)
	return s.Store.(web.LabelledProfiler).LabelledProfile(ctx, from, to, sel)
}

func (s slowQueries) Series(ctx context.Context, from, to time.Time, step time.Duration, sel, groupBy, sampleType string, limit int) ([]web.Series, error) {
	time.Sleep(s.delay)
	return s.Store.Series(ctx, from, to, step, sel, groupBy, sampleType, limit)
}
