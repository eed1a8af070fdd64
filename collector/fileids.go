package collector

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// fileIdentity tells a file's contents apart without reading them: the
// same inode, size and modification time.
type fileIdentity struct {
	dev, inode, size uint64
	mtimeNanos       int64
}

type identified struct {
	id       string
	loads    []progLoad
	cfiBytes uint64
	err      error
}

// fileIDs remembers what identify found per file, so that a program
// started again and again, and libc in every process, is parsed (and,
// without a build ID, its CFI hashed) once rather than once per process.
type fileIDs struct {
	mu     sync.Mutex
	byFile map[fileIdentity]identified
	// vdso is the vDSO's, the same in every process.
	vdso *identified
	hits uint64
}

// maxFileIDs bounds the files remembered; past it they are forgotten all
// at once, which costs one parse per file mapped afterwards.
const maxFileIDs = 4096

// identifyFile is identify for a mapped file, remembered by its identity.
func (c *fileIDs) identifyFile(f *os.File) identified {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return identifyNow(f)
	}
	key := fileIdentity{dev: st.Dev, inode: st.Ino, size: uint64(st.Size), mtimeNanos: st.Mtim.Nano()}
	c.mu.Lock()
	v, ok := c.byFile[key]
	if ok {
		c.hits++
	}
	c.mu.Unlock()
	if ok {
		return v
	}
	v = identifyNow(f)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byFile == nil || len(c.byFile) >= maxFileIDs {
		c.byFile = make(map[fileIdentity]identified)
	}
	c.byFile[key] = v
	return v
}

// identifyVDSO is identify for the vDSO image, read once.
func (c *fileIDs) identifyVDSO(img io.ReaderAt) identified {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vdso == nil {
		v := identifyNow(img)
		c.vdso = &v
	}
	return *c.vdso
}

func identifyNow(f io.ReaderAt) identified {
	id, loads, cfiBytes, err := identify(f)
	return identified{id: id, loads: loads, cfiBytes: cfiBytes, err: err}
}
