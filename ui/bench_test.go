package ui_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/storage"
)

// TestUILoadBenchmark measures, for docs/benchmarks.md, the time from
// navigation to a drawn flame graph of a 1-hour range of a busy host:
// bench/ui.sh backfills a store and runs
//
//	EMBER_UI_BENCH_DIR=bench/out/ui-store go test ./ui -run TestUILoadBenchmark -v
//
// Cold loads (20, as the p95 asks) ask for ranges the server has
// not seen (each shifted by 90 s), so the store answers; cached loads (9)
// repeat one range, which the flame-graph cache answers. Each load is a
// fresh page.
// EMBER_UI_BENCH_QUERY adds to each page's address (&by=none&other=0).
const coldLoads = 20

func TestUILoadBenchmark(t *testing.T) {
	dir := os.Getenv("EMBER_UI_BENCH_DIR")
	if dir == "" {
		t.Skip("set EMBER_UI_BENCH_DIR to a backfilled store (bench/ui.sh makes one)")
	}
	chromium := testenv.RequireChromium(t)
	store := openStore(t, dir)
	first, last := dataExtent(t, store)
	if last.Sub(first) < 90*time.Minute {
		t.Fatalf("the store holds %s..%s; want at least 90 minutes", first, last)
	}
	base := serveStore(t, store, "")
	b := newBrowser(t, chromium)

	// A load's milestones, in ms since navigation began: the flame graph's
	// request sent and answered, the modules running, the JSON parsed, the
	// tree built, and the first draw's start and end.
	type load struct {
		Page, Scripts, Sent, Answered, Modules, Parsed, Built, DrawStart, Drawn float64
		Nodes                                                                   int
		Bytes                                                                   float64
	}
	measure := func(from time.Time) load {
		b.run(t, chromedp.Navigate("about:blank"))
		b.run(t, chromedp.Navigate(base+"/?from="+rfc(from)+"&to="+rfc(from.Add(time.Hour))+os.Getenv("EMBER_UI_BENCH_QUERY")))
		b.waitForWithin(t, "window.__ember && __ember.firstDrawAt > 0", 2*time.Minute)
		var l load
		b.eval(t, `(() => {
			const fg = performance.getEntriesByType("resource").find(e => e.name.includes("/api/v1/flamegraph"));
			const mark = (name) => performance.getEntriesByName(name)[0].startTime;
			const js = performance.getEntriesByType("resource").filter(e => e.name.endsWith(".js"));
			return {page: performance.getEntriesByType("navigation")[0].responseEnd, scripts: Math.max(...js.map(e => e.responseEnd)), sent: fg.startTime, answered: fg.responseEnd, modules: mark("ember:start"), parsed: mark("ember:flamegraph-received"),
				built: mark("ember:tree-built"), drawStart: mark("ember:first-draw-start"), drawn: __ember.firstDrawAt,
				nodes: __ember.tree().n, bytes: fg.encodedBodySize};
		})()`, &l)
		t.Logf("%s: page %.0f, scripts %.0f; request sent %.0f, answered %.0f; modules run %.0f; JSON parsed %.0f; tree built %.0f; draw %.0f to %.0f ms",
			from.Format(time.RFC3339), l.Page, l.Scripts, l.Sent, l.Answered, l.Modules, l.Parsed, l.Built, l.DrawStart, l.Drawn)
		return l
	}
	// quantile is the nearest-rank q-quantile of f over loads.
	quantile := func(q float64, loads []load, f func(load) float64) float64 {
		v := make([]float64, len(loads))
		for i, l := range loads {
			v[i] = f(l)
		}
		slices.Sort(v)
		return v[max(0, int(math.Ceil(q*float64(len(v))))-1)]
	}
	p50 := func(loads []load, f func(load) float64) float64 { return quantile(0.5, loads, f) }
	report := func(name string, loads []load) {
		drawn := func(l load) float64 { return l.Drawn }
		maxDrawn := 0.0
		for _, l := range loads {
			maxDrawn = max(maxDrawn, l.Drawn)
		}
		fmt.Printf("ui load, 1 h range%s, %s: page load -> flame graph drawn p50 %.0f ms, p95 %.0f ms, max %.0f ms over %d loads "+
			"(flamegraph request p50 %.0f ms, p95 %.0f ms; %d nodes, %.0f KiB gzipped)\n",
			os.Getenv("EMBER_UI_BENCH_QUERY"), name, p50(loads, drawn), quantile(0.95, loads, drawn), maxDrawn, len(loads),
			p50(loads, func(l load) float64 { return l.Answered - l.Sent }), quantile(0.95, loads, func(l load) float64 { return l.Answered - l.Sent }),
			loads[0].Nodes, loads[0].Bytes/1024)
		fmt.Printf("ui load, 1 h range, %s, steps p50: request sent at %.0f ms, modules run at %.0f ms; "+
			"answer -> JSON parsed %.0f ms, tree built %.0f ms, first draw starts %.0f ms, draws %.0f ms\n",
			name, p50(loads, func(l load) float64 { return l.Sent }), p50(loads, func(l load) float64 { return l.Modules }),
			p50(loads, func(l load) float64 { return l.Parsed - l.Answered }), p50(loads, func(l load) float64 { return l.Built - l.Parsed }),
			p50(loads, func(l load) float64 { return l.DrawStart - l.Built }), p50(loads, func(l load) float64 { return l.Drawn - l.DrawStart }))
	}
	measure(first) // warms the browser and the store's files; not counted
	var cold, cached []load
	for i := range coldLoads {
		cold = append(cold, measure(first.Add(time.Duration(i+1)*90*time.Second)))
	}
	for range 9 {
		cached = append(cached, measure(first))
	}
	report("cold (store query)", cold)
	report("cached (flame-graph cache)", cached)
	b.noErrors(t)

	// The busy host makes the README's screenshots: a hover, the table.
	if os.Getenv("EMBER_SCREENSHOTS") != "" {
		range1h := "from=" + rfc(first) + "&to=" + rfc(first.Add(time.Hour))
		b.open(t, base, range1h+"&group=comm")
		var hover box
		b.eval(t, `__ember.flame.boxes().filter(b => b.depth === 4).sort((a, b) => b.w - a.w)[1]`, &hover)
		var top float64
		b.eval(t, `__ember.flame.canvas.getBoundingClientRect().top`, &top)
		b.run(t, chromedp.MouseEvent("mouseMoved", hover.X+hover.W/2, top+float64(hover.Depth)*18+9))
		b.screenshot(t, "busy-flame")
		b.open(t, base, range1h+"&view=table&group=comm")
		b.screenshot(t, "busy-table")
		b.open(t, base, "from="+rfc(first.Add(50*time.Minute))+"&to="+rfc(first.Add(80*time.Minute))+
			"&view=diff&group=comm&query="+url.QueryEscape(`{comm=~"postgres|nginx|java"}`))
		b.waitFor(t, "__ember.diff && __ember.flame.diff")
		b.screenshot(t, "busy-diff")
	}
}

// dataExtent finds roughly where the data of the last week starts and ends.
func dataExtent(t *testing.T, store *storage.Store) (time.Time, time.Time) {
	t.Helper()
	now := time.Now()
	series, err := store.Series(context.Background(), storage.SeriesQuery{From: now.Add(-7 * 24 * time.Hour), To: now, Step: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var first, last time.Time
	for _, s := range series {
		for _, p := range s.Points {
			if p.Cores > 0 {
				if first.IsZero() || p.Time.Before(first) {
					first = p.Time
				}
				if p.Time.After(last) {
					last = p.Time
				}
			}
		}
	}
	if first.IsZero() {
		t.Fatal("the store holds no samples from the last week")
	}
	return first.Truncate(time.Minute).Add(2 * time.Minute), last.Truncate(time.Minute)
}
