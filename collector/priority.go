package collector

import (
	"log/slog"
	"sync"

	"github.com/ember-profiler/ember/internal/threadprio"
)

// keepUpNice is the nice value of the threads that must keep up with the
// host's process starts: the event reader, the /proc readers and the range
// installer. At a load average of 100, a thread at nice 0 waits so long
// for a CPU that programs living a second exit before they are read; these
// threads do little work each (bounded queues), so favouring them costs
// the host next to nothing. Table builds, naming and storing stay at 0.
const keepUpNice = -10

var keepUpWarned sync.Once

// keepUp gives the calling goroutine a thread of its own at keepUpNice,
// until the returned function, deferred by the caller, puts the thread back
// at its old priority and lets it go. Without CAP_SYS_NICE it logs once and
// carries on at the usual priority.
func keepUp(log *slog.Logger) (restore func()) {
	restore, err := threadprio.Raise(keepUpNice)
	if err != nil {
		keepUpWarned.Do(func() {
			log.Info("cannot raise the priority of the threads that read new processes; on a busy host, short-lived programs may exit before they are read (grant CAP_SYS_NICE)",
				slog.Int("nice", keepUpNice), slog.Any("err", err))
		})
	}
	return restore
}
