package symbolizer

import (
	"errors"
	"hash/fnv"
	"os"

	"github.com/cilium/ebpf"
)

// loadedBPFPrograms fingerprints the IDs of the kernel's loaded BPF
// programs. IDs are not reused until they wrap at 2^31, so the same
// fingerprint means the same programs, whose kallsyms names are already
// read. ok is false where the IDs cannot be listed (no CAP_SYS_ADMIN).
func loadedBPFPrograms() (fingerprint uint64, ok bool) {
	h := fnv.New64a()
	var buf [4]byte
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			// ErrNotExist after the last one; anything else: cannot tell.
			return h.Sum64(), errors.Is(err, os.ErrNotExist)
		}
		id = next
		buf[0], buf[1], buf[2], buf[3] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
		h.Write(buf[:])
	}
}

func fingerprintOrZero(f func() (uint64, bool)) uint64 {
	v, _ := f()
	return v
}
