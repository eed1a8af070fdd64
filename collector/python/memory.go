package python

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProcMemory reads a live process's memory with process_vm_readv.
type ProcMemory struct{ PID int }

// ReadAt fills p from addr in the process.
func (m ProcMemory) ReadAt(p []byte, addr uint64) error {
	if len(p) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: unsafe.SliceData(p), Len: uint64(len(p))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(p)}}
	n, err := unix.ProcessVMReadv(m.PID, local, remote, 0)
	if err != nil {
		return fmt.Errorf("read %d bytes at %#x of pid %d: %w", len(p), addr, m.PID, err)
	}
	if n != len(p) {
		return fmt.Errorf("read %d of %d bytes at %#x of pid %d", n, len(p), addr, m.PID)
	}
	return nil
}

// isGone reports whether a read failed because the process is gone.
func isGone(err error) bool { return errors.Is(err, unix.ESRCH) }
