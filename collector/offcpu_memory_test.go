package collector

import "testing"

// A stack stays remembered while a thread names it, and one drain more
// after it was read; a joined stack's segments come back with it.
func TestStackMemory(t *testing.T) {
	m := newStackMemory()
	drain1 := map[uint64]storedStack{
		1: {pcs: []uint64{0x10}, next: 2}, // a two-segment user stack
		2: {pcs: []uint64{0x20}},
		3: {pcs: []uint64{0x30}}, // named by nobody after this drain
	}
	m.advance(drain1, []uint64{1})
	m.advance(map[uint64]storedStack{}, []uint64{1})
	if _, ok := m.byHash[3]; !ok {
		t.Error("stack 3 forgotten one drain after it was read: a wait ending in the next drain may name it")
	}
	m.advance(map[uint64]storedStack{}, []uint64{1})
	if _, ok := m.byHash[3]; ok {
		t.Error("stack 3 kept two drains after it was read, named by no thread")
	}
	stored := map[uint64]storedStack{}
	m.fill(stored, 1)
	st, ok := userStack(stored, 1)
	if !ok || len(st.pcs) != 2 || st.pcs[0] != 0x10 || st.pcs[1] != 0x20 {
		t.Errorf("stack 1 from memory: %+v %v", st, ok)
	}
	m.advance(map[uint64]storedStack{}, nil)
	m.advance(map[uint64]storedStack{}, nil)
	if len(m.byHash) != 0 {
		t.Errorf("%d stacks kept after no thread names them", len(m.byHash))
	}
}
