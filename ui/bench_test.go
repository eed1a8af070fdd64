package ui_test

import (
	"context"
	"fmt"
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
// Cold loads ask for ranges the server has not seen (each shifted by 3
// minutes), so the store answers; cached loads repeat one range, which the
// flame-graph cache answers. Each load is a fresh page.
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

	type load struct {
		pageMs, apiMs float64
		nodes         int
		bytes         float64
	}
	measure := func(from time.Time) load {
		b.run(t, chromedp.Navigate("about:blank"))
		b.run(t, chromedp.Navigate(base+"/?from="+rfc(from)+"&to="+rfc(from.Add(time.Hour))))
		b.waitForWithin(t, "window.__ember && __ember.firstDrawAt > 0", 2*time.Minute)
		var timings string
		b.eval(t, `performance.getEntriesByType("resource").filter(e => e.name.includes("/api/")).map(e => e.name.replace(/^.*api.v1./, "").slice(0, 40) + " " + e.duration.toFixed(0) + " ms").join("; ")`, &timings)
		var marks string
		b.eval(t, `performance.getEntriesByType("mark").map(m => m.name + " " + m.startTime.toFixed(0)).join("; ") + "; drawn " + __ember.firstDrawAt.toFixed(0) + "; dom " + performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd.toFixed(0)`, &marks)
		t.Logf("%s: %s; %s", from.Format(time.RFC3339), timings, marks)
		var r struct {
			Page, API, Bytes float64
			Nodes            int
		}
		b.eval(t, `(() => {
			const e = performance.getEntriesByType("resource").find(e => e.name.includes("/api/v1/flamegraph"));
			return {page: __ember.firstDrawAt, api: e.duration, bytes: e.encodedBodySize, nodes: __ember.tree().n};
		})()`, &r)
		return load{r.Page, r.API, r.Nodes, r.Bytes}
	}
	report := func(name string, loads []load) {
		page := make([]float64, len(loads))
		api := make([]float64, len(loads))
		for i, l := range loads {
			page[i], api[i] = l.pageMs, l.apiMs
		}
		slices.Sort(page)
		slices.Sort(api)
		fmt.Printf("ui load, 1 h range, %s: page load -> flame graph drawn p50 %.0f ms, max %.0f ms over %d loads "+
			"(flamegraph request p50 %.0f ms; %d nodes, %.0f KiB gzipped)\n",
			name, page[len(page)/2], page[len(page)-1], len(page), api[len(api)/2], loads[0].nodes, loads[0].bytes/1024)
	}
	measure(first) // warms the browser and the store's files; not counted
	var cold, cached []load
	for i := range 9 {
		cold = append(cold, measure(first.Add(time.Duration(i+1)*3*time.Minute)))
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
