package symbolizer

import (
	"hash/fnv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadedBPFPrograms fingerprints the IDs of the kernel's loaded BPF
// programs. IDs are not reused until they wrap at 2^31, so the same
// fingerprint means the same programs, whose kallsyms names are already
// read. ok is false where the IDs cannot be listed (no CAP_SYS_ADMIN).
func loadedBPFPrograms() (fingerprint uint64, ok bool) {
	h := fnv.New64a()
	var buf [4]byte
	id := uint32(0)
	for {
		next, err := nextBPFProgramID(id)
		if err != nil {
			// ENOENT after the last one; anything else: cannot tell.
			return h.Sum64(), err == unix.ENOENT
		}
		id = next
		buf[0], buf[1], buf[2], buf[3] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
		h.Write(buf[:])
	}
}

// nextBPFProgramID is the bpf(BPF_PROG_GET_NEXT_ID) system call, made
// directly: it is all the symbolizer needs of BPF, and a BPF library would
// link the loader and its dependencies into every stage that names frames.
func nextBPFProgramID(start uint32) (uint32, error) {
	// union bpf_attr, as the command reads it: start_id, next_id, open_flags.
	attr := struct{ startID, nextID, openFlags uint32 }{startID: start}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_GET_NEXT_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return 0, errno
	}
	return attr.nextID, nil
}

func fingerprintOrZero(f func() (uint64, bool)) uint64 {
	v, _ := f()
	return v
}
