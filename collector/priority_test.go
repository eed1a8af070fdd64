package collector

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/internal/testenv"
)

// The thread keepUp raises runs at keepUpNice, and the threads the runtime
// starts afterwards do not inherit it.
func TestKeepUpRaisesOnlyItsThread(t *testing.T) {
	testenv.RequireRoot(t)
	type result struct {
		tid  int
		nice int
		err  error
	}
	done := make(chan result)
	go func() {
		keepUp(slog.Default())
		tid := unix.Gettid()
		nice, err := threadNice(tid)
		done <- result{tid, nice, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.nice != keepUpNice {
		t.Fatalf("keepUp's thread runs at nice %d, want %d", r.nice, keepUpNice)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if tid == r.tid {
			continue
		}
		if nice, err := threadNice(tid); err == nil && nice == keepUpNice {
			t.Errorf("thread %d also runs at nice %d: the raised priority leaked", tid, nice)
		}
	}
}

// threadNice reads a thread's nice value, field 19 of its stat.
func threadNice(tid int) (int, error) {
	raw, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return strconv.Atoi(fields[16]) // field 19 is the 17th after comm
}
