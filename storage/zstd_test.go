package storage

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4/y"
)

// TestLargestPartCompressesWithoutHistory compresses blocks of the largest
// part size from several goroutines at once, as Badger's table builder
// does, with the encoder Badger uses (a process-wide one in badger/y): a
// block under zstd's 128 KiB is encoded without the 16 MiB history window
// that each of the encoder's per-CPU states would otherwise keep for good.
func TestLargestPartCompressesWithoutHistory(t *testing.T) {
	block := make([]byte, maxPartBytes+4<<10) // a part, its key and Badger's framing
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(rng.IntN(16)) // compressible, like a table block
	}
	before := heapInUse()
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := y.ZSTDCompress(nil, block, 3); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	grew := int64(heapInUse()) - int64(before)
	t.Logf("heap in use grew %.1f MiB compressing %d KiB blocks from %d goroutines", float64(grew)/(1<<20), len(block)>>10, 4*runtime.GOMAXPROCS(0))
	if grew > 8<<20 {
		t.Errorf("heap grew %.1f MiB: the encoder kept history windows", float64(grew)/(1<<20))
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
