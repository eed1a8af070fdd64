// Package threadprio runs a goroutine on a thread of its own at another
// nice value, for the daemon's work that must keep up on a loaded host.
package threadprio

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Raise locks the calling goroutine to its thread and sets the thread's nice
// value, until restore, which puts the old value back and unlocks the thread
// so the runtime may reuse it. Setting a nice value below the current one
// needs CAP_SYS_NICE; without it Raise changes nothing and returns the error.
func Raise(nice int) (restore func(), err error) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// Linux's getpriority returns 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err == nil {
		err = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
	}
	if err != nil {
		runtime.UnlockOSThread()
		return func() {}, err
	}
	return func() {
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prio)
		runtime.UnlockOSThread()
	}, nil
}
