package threadprio

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func niceOf(t *testing.T, tid int) int {
	t.Helper()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - prio
}

// A raised thread runs at the nice value asked for, and is put back.
func TestRaiseAndRestore(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tid := unix.Gettid()
		before := niceOf(t, tid)
		restore, err := Raise(before - 1)
		if err != nil {
			if os.Getenv("CI") != "" && os.Geteuid() == 0 {
				t.Errorf("raise as root in CI: %v", err)
			} else {
				t.Logf("cannot raise here (%v): only the fallback is checked", err)
			}
			restore()
			return
		}
		if got := niceOf(t, tid); got != before-1 {
			t.Errorf("nice %d while raised, want %d", got, before-1)
		}
		restore()
		if got := niceOf(t, tid); got != before {
			t.Errorf("nice %d after restore, want %d", got, before)
		}
	}()
	<-done
}
