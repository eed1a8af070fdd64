package storage

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// Real profiles written by `ember record -d 2s` (whole host, the hotspot
// fixture running) appended as intervals, closed, reopened, appended again:
// the daemon does exactly this across a restart. Found by the daemon's
// end-to-end test: after the reopen, queries failed with
// "stack N: corrupt record".
func TestReopenAppendRealProfiles(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	var want int64
	for round := 0; round < 2; round++ {
		s, err := Open(Options{Dir: dir, MinFreeDiskBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			f, err := os.Open(fmt.Sprintf("testdata/record-%d.pb.gz", i))
			if err != nil {
				t.Fatal(err)
			}
			p, err := profile.Parse(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			p.TimeNanos = base.Add(time.Duration(round*3+i) * 10 * time.Second).UnixNano()
			p.DurationNanos = int64(10 * time.Second)
			for _, smp := range p.Sample {
				want += smp.Value[0]
			}
			if err := s.Append(context.Background(), p, map[string]string{"host": "h"}); err != nil {
				t.Fatal(err)
			}
		}
		sel, _ := ParseSelector("")
		q, err := s.Query(context.Background(), ProfileQuery{From: base.Add(-time.Hour), To: time.Now(), Selector: sel})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var got int64
		for _, smp := range q.Sample {
			got += smp.Value[0]
		}
		if got != want {
			t.Errorf("round %d: stored %d samples, query returns %d", round, want, got)
		}
		s.Close()
	}
}
