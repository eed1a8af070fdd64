package storage

import (
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"
)

// TestCompactionUnstallsLevelZero: with Badger's own compactors off, the
// store's loop must keep level 0 below the stall, or writes would block for
// good once eight memtables had been flushed. 48 MiB of incompressible
// values is a dozen memtables.
func TestCompactionUnstallsLevelZero(t *testing.T) {
	s := openTest(t, Options{maintenanceEvery: time.Hour})
	done := make(chan error, 1)
	go func() {
		value := make([]byte, 64<<10)
		for i := range 768 {
			rand.Read(value)
			key := binary.BigEndian.AppendUint32([]byte("test/"), uint32(i))
			wb := s.db.NewWriteBatch()
			if err := wb.Set(key, value); err != nil {
				done <- err
				return
			}
			if err := wb.Flush(); err != nil {
				done <- err
				return
			}
			s.wakeCompaction() // as Append does
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		s.compactIfNeeded() // lets Close finish
		t.Fatal("writes stalled: level 0 was not compacted")
	}
	var levelZero int
	for _, l := range s.db.Levels() {
		if l.Level == 0 {
			levelZero = l.NumTables
		}
	}
	if levelZero >= 8 {
		t.Errorf("level 0 holds %d tables, at the stall", levelZero)
	}
	t.Logf("level 0 holds %d tables after 48 MiB", levelZero)
}
