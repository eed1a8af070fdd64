package collector

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
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
	var first *loadedTable
	for run := range 2 {
		// The process runs until its table is in, however long that takes
		// on a loaded machine, then exits.
		cmd := startFixture(t, path, untilKilled)
		pid := uint32(cmd.Process.Pid)
		if run == 1 {
			// The sampler may install the second run itself from the idle
			// table, and, its files known, this side need not read it.
			if covered := waitInstalledOrCovered(t, c, pid, first); covered {
				t.Log("run 1: the sampler's own install walks with the idle table; nothing read")
				cmd.Process.Kill()
				cmd.Wait()
				c.unwind.mu.Lock()
				kept := c.unwind.tables[first.id] == first
				c.unwind.mu.Unlock()
				if !kept {
					t.Error("the idle table was dropped")
				}
				return
			}
		}
		tables, st := waitInstalled(t, c, pid)
		tbl := programTable(t, c, tables, path)
		t.Logf("run %d: %d tables, %d idle, %d reused since start", run, st.Tables, st.Idle, st.IdleReused)
		if run == 1 && tbl != first {
			t.Error("the second run installed its table again instead of reusing the idle one")
		}
		if run == 1 && st.IdleReused == 0 {
			t.Error("no reuse of an idle table counted")
		}
		first = tbl
		cmd.Process.Kill()
		cmd.Wait()
		if st := waitIdle(t, c, tbl); st.Idle == 0 {
			t.Errorf("run %d: the program's table is idle, the stats say none is: %+v", run, st)
		}
	}
}

// programTable finds, among a process's tables, the one of the program at path.
func programTable(t *testing.T, c *Collector, tables []string, path string) *loadedTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, _, _, err := identify(f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tables, id) {
		t.Fatalf("the process's tables %v lack its program's %s", tables, id)
	}
	c.unwind.mu.Lock()
	defer c.unwind.mu.Unlock()
	return c.unwind.tables[id]
}

// waitIdle drains c until the exit of tbl's last process is seen and tbl
// is left loaded and idle, and returns the stats of the last drain.
func waitIdle(t *testing.T, c *Collector, tbl *loadedTable) model.UnwindTableStats {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		c.unwind.mu.Lock()
		kept := c.unwind.tables[tbl.id] == tbl
		refs := tbl.refs
		idle := refs == 0 && !tbl.idleSince.IsZero()
		c.unwind.mu.Unlock()
		if !kept {
			t.Fatalf("table %s was dropped instead of kept idle", tbl.id)
		}
		if idle {
			return b.Stats.Unwind.Tables
		}
		if time.Now().After(deadline) {
			t.Fatalf("table %s still has %d references %s after its process exited", tbl.id, refs, testenv.CPUTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitInstalledOrCovered waits until this side installed pid (false) or
// the sampler's own install of it holds every range it met, one of them
// walked with tbl (true).
func waitInstalledOrCovered(t *testing.T, c *Collector, pid uint32, tbl *loadedTable) bool {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		c.unwind.mu.Lock()
		installed := c.unwind.installs[pid] != nil
		start := tbl.start
		c.unwind.mu.Unlock()
		if installed {
			return false
		}
		if rec, ok := c.unwind.maps.image(pid); ok && rec.Ranges > 0 && rec.Unknown == 0 && rec.Overflow == 0 {
			for j := range min(int(rec.Ranges), len(rec.R)) {
				if r := &rec.R[j]; r.Installed != 0 && r.Table == start {
					return true
				}
			}
		}
		if _, err := c.Drain(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d is neither installed nor covered by the sampler after %s", pid, testenv.CPUTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
