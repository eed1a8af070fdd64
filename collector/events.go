package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// eventsEvery is how long a process event may wait in the ring; the
// loader's events wait loaderSettle before their read anyway.
const eventsEvery = 50 * time.Millisecond

// ringWaiter waits for the event ring in Go's network poller rather than
// in the ring reader's own epoll_wait. A goroutine blocked in a system call
// keeps its P, so the runtime's sysmon thread never sleeps deeply: it wakes
// every 20 µs to 10 ms to take the P back, which under process churn cost
// more of the daemon's CPU than reading the events did.
type ringWaiter struct {
	file   *os.File // a duplicate of the ring's descriptor, non-blocking
	conn   syscall.RawConn
	closed atomic.Bool
}

// newRingWaiter registers a duplicate of the ring map's descriptor with
// the poller; it fails where the kernel cannot poll it that way.
func newRingWaiter(ringFD int) (*ringWaiter, error) {
	fd, err := unix.FcntlInt(uintptr(ringFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate the event ring's descriptor: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("event ring descriptor: %w", err)
	}
	f := os.NewFile(uintptr(fd), "event ring")
	// SetReadDeadline fails on a file the poller did not take.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("poll the event ring: %w", err)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("poll the event ring: %w", err)
	}
	return &ringWaiter{file: f, conn: conn}, nil
}

// wait returns when ready reports true, checked at each wakeup of the
// ring, or at deadline; it returns os.ErrClosed once closed.
func (w *ringWaiter) wait(deadline time.Time, ready func() bool) error {
	err := w.file.SetReadDeadline(deadline)
	if err == nil {
		err = w.conn.Read(func(uintptr) bool { return ready() })
	}
	switch {
	case err == nil:
		return nil
	case w.closed.Load():
		// The poller's own error for a closed file is not os.ErrClosed.
		return os.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	}
	return err
}

func (w *ringWaiter) close() error {
	w.closed.Store(true)
	return w.file.Close()
}

// openEvents opens the event ring's reader and, where it can, its waiter.
func (c *Collector) openEvents() error {
	var err error
	if c.ring, err = ringbuf.NewReader(c.objs.Events); err != nil {
		return fmt.Errorf("open event ring buffer: %w", err)
	}
	if c.cfg.EventsInSyscall {
		return nil
	}
	if c.ringWait, err = newRingWaiter(c.objs.Events.FD()); err != nil {
		// The reader's own blocking wait still works, at sysmon's cost.
		c.log.Debug("event ring waited for in a system call", slog.Any("err", err))
	}
	return nil
}

// pastDeadline makes the ring reader return what it holds without waiting.
var pastDeadline = time.Unix(1, 0)

// readEvents handles process notifications until ctx ends or the ring
// closes. It only queues the /proc reads (images.go), so that it keeps up
// with the ring and sees exits before the reads they make needless.
func (c *Collector) readEvents(ctx context.Context) {
	var rec ringbuf.Record
	for ctx.Err() == nil {
		// The sampler wakes this only when the ring is filling: events are
		// read in batches, eventsEvery apart.
		deadline := time.Now().Add(eventsEvery)
		if c.ringWait != nil {
			err := c.ringWait.wait(deadline, func() bool { return c.ring.AvailableBytes() > 0 })
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				c.log.Warn("wait for process events", slog.Any("err", err))
			}
			if c.ring.AvailableBytes() == 0 {
				continue
			}
			deadline = pastDeadline
		}
		c.ring.SetDeadline(deadline)
		for {
			err := c.ring.ReadInto(&rec)
			if err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					c.log.Warn("read process events", slog.Any("err", err))
				}
				break
			}
			c.handleEvent(rec.RawSample)
		}
	}
}

// handleEvent queues or cancels the reads one event asks for.
func (c *Collector) handleEvent(raw []byte) {
	var ev bpf.SamplerEvent
	if len(raw) < int(unsafe.Sizeof(ev)) {
		return
	}
	ev = *(*bpf.SamplerEvent)(unsafe.Pointer(&raw[0]))
	switch bpf.SamplerEventType(ev.Type) {
	case bpf.SamplerEventTypeEVENT_NEW_PROCESS:
		// Its libraries are loaded. If a sample came first, it was read
		// before they were mapped; this reads it again.
		c.images.pushLoaded(imageRead{key: model.ProcessKey{PID: ev.Pid, ExecSeq: ev.ExecSeq}, startCode: ev.StartCode})
	case bpf.SamplerEventTypeEVENT_SAMPLED:
		if !c.tracker.alive(ev.Pid, ev.ExecSeq) {
			c.images.pushSampled(imageRead{key: model.ProcessKey{PID: ev.Pid, ExecSeq: ev.ExecSeq}, startCode: ev.StartCode})
		}
	case bpf.SamplerEventTypeEVENT_NEEDS_MAPPINGS:
		// A library loaded since the snapshot (dlopen), or code without a file.
		if c.unwind != nil && c.unwind.needsRefresh(ev.Pid, ev.ExecSeq) {
			c.images.pushSampled(imageRead{key: model.ProcessKey{PID: ev.Pid, ExecSeq: ev.ExecSeq}})
		}
	case bpf.SamplerEventTypeEVENT_EXIT:
		c.images.cancel(ev.Pid)
		c.tracker.exited(ev.Pid)
		if c.unwind != nil {
			if rec := c.unwind.remove(ev.Pid); rec != nil {
				// Its last samples may come before /proc was ever read.
				c.tracker.rememberRecorded(ev.Pid, recordedImageOf(rec))
			}
		}
		for _, in := range c.interpreters {
			in.exited(ev.Pid)
		}
	}
}
