package collector

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDropIdleTables: idle tables stay while young and while the table
// space is at most half full; past either, the oldest go first, and tables
// in use never do.
func TestDropIdleTables(t *testing.T) {
	now := time.Now()
	newTables := func() *unwindTables {
		u := &unwindTables{tables: map[string]*loadedTable{}}
		u.stats.WordCapacity = 1000
		add := func(id string, start, count uint32, refs int, idleFor time.Duration) {
			lt := &loadedTable{id: id, start: start, count: count, refs: refs}
			if refs == 0 {
				lt.idleSince = now.Add(-idleFor)
			}
			u.tables[id] = lt
		}
		add("used", 0, 300, 1, 0)
		add("old", 300, 100, 0, 9*time.Minute)
		add("older", 400, 100, 0, 9*time.Minute+time.Second)
		add("young", 500, 50, 0, time.Second)
		return u
	}

	u := newTables() // 550 of 1000 words: over half, so the oldest idle goes
	u.dropIdle(now)
	if u.tables["older"] != nil || u.tables["old"] == nil || u.tables["young"] == nil || u.tables["used"] == nil {
		t.Errorf("over half full: kept %v, want all but the oldest idle table", keys(u.tables))
	}
	if len(u.freeing) != 1 || u.freeing[0] != (shard{400, 100}) {
		t.Errorf("freeing %v, want the oldest idle table's shard", u.freeing)
	}

	u = newTables()
	u.dropIdle(now.Add(2 * time.Minute)) // old and older pass the 10 minutes
	if u.tables["old"] != nil || u.tables["older"] != nil || u.tables["young"] == nil || u.tables["used"] == nil {
		t.Errorf("after the TTL: kept %v, want used and young", keys(u.tables))
	}

	u = newTables()
	u.tables["used"].count = 100 // 350 of 1000: nothing to make room for
	u.dropIdle(now)
	if len(u.tables) != 4 || len(u.freeing) != 0 {
		t.Errorf("under half full and young: kept %v, freeing %v", keys(u.tables), u.freeing)
	}
}

func keys(m map[string]*loadedTable) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestReleaseKeepsTablesIdle: the last release leaves a loaded table idle
// instead of freeing it; a table that did not fit goes, to be tried again.
func TestReleaseKeepsTablesIdle(t *testing.T) {
	u := &unwindTables{tables: map[string]*loadedTable{}}
	loaded := &loadedTable{id: "a", count: 10, refs: 1}
	missing := &loadedTable{id: "b", notLoaded: true, refs: 1}
	u.tables["a"], u.tables["b"] = loaded, missing
	u.release(loaded)
	u.release(missing)
	if u.tables["a"] == nil || loaded.idleSince.IsZero() || len(u.freeing) != 0 {
		t.Errorf("loaded table: kept %v, idle since %v, freeing %v", u.tables["a"] != nil, loaded.idleSince, u.freeing)
	}
	if u.tables["b"] != nil {
		t.Error("a table that did not fit stays registered")
	}
}

// TestUnwindTableIdleReuse: a program that runs again after its last
// process exited finds its table still loaded.
func TestUnwindTableIdleReuse(t *testing.T) {
	c := newCollector(t, Config{}) // whole host: processes are found at their first sample
	path, _ := filepath.Abs("../testdata/unwind/chain-nofp")
	var reused uint64
	for run := range 2 {
		cmd := exec.Command(path, "1")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		// Two drains: the first sees the exit, the next lets the table go idle.
		for range 2 {
			b, err := c.Drain()
			if err != nil {
				t.Fatal(err)
			}
			st := b.Stats.Unwind.Tables
			t.Logf("run %d: %d tables, %d idle, %d reused since start", run, st.Tables, st.Idle, st.IdleReused)
			reused = st.IdleReused
			if run == 0 && st.Idle == 0 {
				t.Error("no table idle after the program exited")
			}
		}
	}
	if reused == 0 {
		t.Error("the second run installed its table again instead of reusing the idle one")
	}
}
