package ui_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/internal/threadprio"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/web"
)

// TestUILoadBenchmark measures, for docs/benchmarks.md, the time from
// navigation to a drawn flame graph of the default view (grouped by
// process, (other) at most 10%) of a busy host:
//
//	EMBER_UI_BENCH_DIR=STORE go test ./ui -run TestUILoadBenchmark -v
//
// bench/ui.sh runs it on a backfilled store or on one the daemon recorded,
// with a sampling daemon beside it if asked. The ranges are anchored at the
// store's last data, so that they are as close to the live "last hour" as
// the store allows: the warm-up and the cached loads (9, the flame-graph
// cache answers) are [last-window, last]; cold load i (20, as the issue's
// p95 asks) is that range moved back by i shifts, a range the server has
// not seen, so the store answers. The window is EMBER_UI_BENCH_WINDOW (1h);
// the shift EMBER_UI_BENCH_SHIFT, else 90 s or less so that all 21 ranges
// fit in the data (12 s on the 64-minute soak store). Each load is a fresh
// page, opened when the last one's timeline has loaded. EMBER_UI_BENCH_QUERY adds to each page's address (&by=none&other=0).
// On a busy host (bench/ui.sh -b): EMBER_UI_BENCH_QUERY_NICE runs the
// threads that answer queries at that nice value, as the daemon's
// --query-nice does; EMBER_UI_BENCH_BROWSER_CGROUP (a cgroup.procs file)
// starts Chromium in that cgroup, standing in for an engineer's browser on
// a machine of its own.
const coldLoads = 20

func TestUILoadBenchmark(t *testing.T) {
	dir := os.Getenv("EMBER_UI_BENCH_DIR")
	if dir == "" {
		t.Skip("set EMBER_UI_BENCH_DIR to a backfilled store (bench/ui.sh makes one)")
	}
	chromium := testenv.RequireChromium(t)
	store := openStore(t, dir)
	first, last := dataExtent(t, store)
	window, err := envDuration("EMBER_UI_BENCH_WINDOW", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	shift, err := envDuration("EMBER_UI_BENCH_SHIFT", 0)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := benchRanges(first, last, window, shift, coldLoads)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ui load, ranges: store data %s to %s; cached [%s, +%s), cold %d ranges from %s, each %s earlier\n",
		first.Format(time.RFC3339), last.Format(time.RFC3339), starts[0].Format(time.RFC3339), window,
		coldLoads, starts[1].Format(time.RFC3339), starts[0].Sub(starts[1]))
	opts := web.Options{Store: web.FromStorage(store)}
	if n, ok, err := envNice("EMBER_UI_BENCH_QUERY_NICE"); err != nil {
		t.Fatal(err)
	} else if ok {
		opts.RaiseQuery = func() func() {
			restore, err := threadprio.Raise(n)
			if err != nil {
				t.Errorf("query threads at nice %d: %v", n, err)
			}
			return restore
		}
	}
	base := serveWith(t, opts)
	if procs := os.Getenv("EMBER_UI_BENCH_BROWSER_CGROUP"); procs != "" {
		chromium = commandInCgroup(t, chromium, procs)
	}
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
		b.run(t, chromedp.Navigate(base+"/?from="+rfc(from)+"&to="+rfc(from.Add(window))+os.Getenv("EMBER_UI_BENCH_QUERY")))
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
		// The timeline's series queries start after the first draw: wait
		// for them, or the next load's flame graph would queue behind them
		// for the server's two query slots and its CPU.
		b.waitForWithin(t, `__ember.seriesLoads > 0 || document.getElementById("timeline-readout").textContent.includes("unavailable")`, 2*time.Minute)
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
		fmt.Printf("ui load, %s range%s, %s: page load -> flame graph drawn p50 %.0f ms, p95 %.0f ms, max %.0f ms over %d loads "+
			"(flamegraph request p50 %.0f ms, p95 %.0f ms; %d nodes, %.0f KiB gzipped)\n",
			window, os.Getenv("EMBER_UI_BENCH_QUERY"), name, p50(loads, drawn), quantile(0.95, loads, drawn), maxDrawn, len(loads),
			p50(loads, func(l load) float64 { return l.Answered - l.Sent }), quantile(0.95, loads, func(l load) float64 { return l.Answered - l.Sent }),
			loads[0].Nodes, loads[0].Bytes/1024)
		fmt.Printf("ui load, %s range, %s, steps p50: request sent at %.0f ms, modules run at %.0f ms; "+
			"answer -> JSON parsed %.0f ms, tree built %.0f ms, first draw starts %.0f ms, draws %.0f ms\n",
			window, name, p50(loads, func(l load) float64 { return l.Sent }), p50(loads, func(l load) float64 { return l.Modules }),
			p50(loads, func(l load) float64 { return l.Parsed - l.Answered }), p50(loads, func(l load) float64 { return l.Built - l.Parsed }),
			p50(loads, func(l load) float64 { return l.DrawStart - l.Built }), p50(loads, func(l load) float64 { return l.Drawn - l.DrawStart }))
	}
	measure(starts[0]) // warms the browser and the store's files; not counted
	var cold, cached []load
	for _, from := range starts[1:] {
		cold = append(cold, measure(from))
	}
	for range 9 {
		cached = append(cached, measure(starts[0]))
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

// dataExtent finds where the store's data of the last week starts and
// ends, to the 10 s step: first found at a 2-minute step, then refined.
// The first step with data is left out (it may be partly filled) and the
// last is where its step starts.
func dataExtent(t *testing.T, store *storage.Store) (time.Time, time.Time) {
	t.Helper()
	now := time.Now()
	first, last := stepsWithData(t, store, now.Add(-7*24*time.Hour), now, 2*time.Minute)
	if first.IsZero() {
		t.Fatal("the store holds no samples from the last week")
	}
	const step = 10 * time.Second
	first, last = stepsWithData(t, store, first.Add(-2*time.Minute), last.Add(4*time.Minute), step)
	return first.Add(step), last
}

// stepsWithData is the first and last step of [from, to) with CPU in it.
func stepsWithData(t *testing.T, store *storage.Store, from, to time.Time, step time.Duration) (first, last time.Time) {
	t.Helper()
	series, err := store.Series(context.Background(), storage.SeriesQuery{From: from, To: to, Step: step})
	if err != nil {
		t.Fatal(err)
	}
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
	return first, last
}

// benchRanges is where the benchmark's ranges of length window start:
// [0] is the newest, ending at last, then n more, each shift earlier, all
// within [first, last]. A zero shift is the largest that fits, at most
// 90 s, in whole seconds.
func benchRanges(first, last time.Time, window, shift time.Duration, n int) ([]time.Time, error) {
	room := last.Sub(first) - window
	if shift == 0 {
		shift = min(90*time.Second, (room / time.Duration(n)).Truncate(time.Second))
	}
	if shift <= 0 || time.Duration(n)*shift > room {
		return nil, fmt.Errorf("the store holds %s of data (%s to %s): too little for a %s window and %d more shifted by %s; "+
			"set EMBER_UI_BENCH_WINDOW shorter or EMBER_UI_BENCH_SHIFT smaller", last.Sub(first), first.Format(time.RFC3339),
			last.Format(time.RFC3339), window, n, shift)
	}
	starts := make([]time.Time, n+1)
	for i := range starts {
		starts[i] = last.Add(-window - time.Duration(i)*shift)
	}
	return starts, nil
}

// envDuration is the duration in env variable name, def when unset.
func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 1h or 15s", name, v)
	}
	return d, nil
}

// envNice is the nice value in env variable name; ok is false when unset.
func envNice(name string) (nice int, ok bool, err error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, false, nil
	}
	nice, err = strconv.Atoi(v)
	if err != nil || nice < -20 || nice > 19 {
		return 0, false, fmt.Errorf("%s=%q: want a nice value, -20 to 19", name, v)
	}
	return nice, true, nil
}

// commandInCgroup is a script that moves itself into the cgroup whose
// cgroup.procs file is procs, then runs command with its arguments:
// chromedp takes a path, not a command line. Chromium's child processes
// stay in the cgroup.
func commandInCgroup(t *testing.T, command, procs string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in-cgroup")
	script := fmt.Sprintf("#!/bin/sh\necho $$ >%q || exit 1\nexec %q \"$@\"\n", procs, command)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBenchRanges(t *testing.T) {
	first := time.Date(2026, 12, 7, 3, 52, 10, 0, time.UTC)
	last := first.Add(64 * time.Minute) // the recorded soak store's extent
	starts, err := benchRanges(first, last, time.Hour, 0, coldLoads)
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != coldLoads+1 || !starts[0].Add(time.Hour).Equal(last) {
		t.Fatalf("want %d ranges, the first ending at the data's end; got %v", coldLoads+1, starts)
	}
	seen := map[time.Time]bool{}
	for _, s := range starts {
		if s.Before(first) || seen[s] {
			t.Errorf("range from %s: before the data (%s) or repeated", s, first)
		}
		seen[s] = true
	}
	if shift := starts[0].Sub(starts[1]); shift != 12*time.Second {
		t.Errorf("shift %s; want the 4 spare minutes over 20 loads, 12s", shift)
	}
	// A 2-hour backfill keeps the 90 s shift.
	starts, err = benchRanges(first, first.Add(2*time.Hour), time.Hour, 0, coldLoads)
	if err != nil || starts[0].Sub(starts[1]) != 90*time.Second {
		t.Errorf("2 h of data: shift %v (%v); want 90s", starts[0].Sub(starts[1]), err)
	}
	if _, err := benchRanges(first, first.Add(59*time.Minute), time.Hour, 0, coldLoads); err == nil {
		t.Error("59 minutes of data for a 1 h window: no error")
	}
	if _, err := benchRanges(first, last, time.Hour, 13*time.Second, coldLoads); err == nil {
		t.Error("a shift of 13 s past the data: no error")
	}
}
