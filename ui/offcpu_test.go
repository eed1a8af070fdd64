package ui_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/schema"
)

// The profile switch shows time off the CPU: the flame graph and the
// timeline ask for type=offcpu, a stack that only waits is drawn, and the
// timeline counts threads, not cores.
func TestBrowserOffCPU(t *testing.T) {
	chromium := testenv.RequireChromium(t)
	store := openStore(t, t.TempDir())
	end := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	for iv := range 6 {
		b := newProfile(end.Add(time.Duration(iv-6)*10*time.Second), 10*time.Second)
		b.add("app", 7, []string{"main.main", "api.spin"}, 2_000_000_000)
		b.add("app", 7, []string{"main.main", "api.wait"}, 0)
		b.p.SampleType = append(b.p.SampleType, schema.OffCPU.ValueType(), schema.Waits.ValueType())
		for _, s := range b.p.Sample {
			off := int64(0)
			if s.Location[0].Line[0].Function.Name == "api.wait" {
				off = 8_000_000_000 // 0.8 threads over 10 s
				s.Value[0], s.Value[1] = 0, 0
			}
			s.Value = append(s.Value, off, off/1_000_000)
		}
		if err := store.Append(context.Background(), b.p, nil); err != nil {
			t.Fatal(err)
		}
	}
	base := serveStore(t, store, "")
	br := newBrowser(t, chromium)
	target := "from=" + rfc(end.Add(-time.Minute)) + "&to=" + rfc(end)

	br.open(t, base, target)
	br.box(t, "flame", "api.spin")
	br.run(t, chromedp.SetValue("#profile-type", "offcpu", chromedp.ByQuery))
	br.eval(t, `document.querySelector("#profile-type").dispatchEvent(new Event("change"))`, nil)
	br.waitFor(t, `__ember.state().type === "offcpu" && __ember.flameQueries.some(q => q.type === "offcpu")`)
	br.waitFor(t, `__ember.flame.boxes().some(b => b.name === "api.wait")`)
	if wait, root := br.box(t, "flame", "api.wait"), br.box(t, "flame", "root"); wait.W < root.W*0.99 {
		t.Errorf("api.wait is %.1f of %.1f px: off-CPU time is all its own", wait.W, root.W)
	}
	br.waitFor(t, `performance.getEntriesByType("resource").some(e => e.name.includes("/api/v1/series?") && e.name.includes("type=offcpu"))`)
	var unit string
	br.eval(t, `__ember.timeline.unit`, &unit)
	if unit != "threads" {
		t.Errorf("timeline unit %q, want threads", unit)
	}
	br.noErrors(t)
}
