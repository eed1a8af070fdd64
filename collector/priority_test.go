package collector

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

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
		defer keepUp(slog.Default())()
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
	// Threads of goroutines that ended locked (this one's, and those of
	// collectors other tests closed) go away shortly after; a thread
	// that inherited the priority would stay.
	deadline := time.Now().Add(10 * time.Second)
	for {
		raised := raisedThreads(t)
		if len(raised) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v still run at nice %d after their goroutines ended: the raised priority leaked", raised, keepUpNice)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// raisedThreads lists this process's threads at keepUpNice.
func raisedThreads(t *testing.T) []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var raised []int
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if nice, err := threadNice(tid); err == nil && nice == keepUpNice {
			raised = append(raised, tid)
		}
	}
	return raised
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
