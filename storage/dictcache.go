package storage

import "sync"

// entryCache holds recently used dictionary entries in memory, by id and
// by value, within a byte budget; the rest stay on disk only. Eviction is
// CLOCK: an entry used since the hand last passed survives one more round.
// Entries that queries read in bulk come in unreferenced, so that a
// day-long query does not push out what appends keep using.
//
// It has its own lock: queries share the store's lock for reading and
// still fill the cache.
type entryCache struct {
	mu      sync.Mutex
	budget  int64
	bytes   int64
	byID    map[entryID]int32 // slot
	byValue map[string]int32  // slot, by kind + value key
	slots   []cacheSlot
	free    []int32
	hand    int
	scratch []byte

	hits, misses, evictions uint64
}

type entryID struct {
	kind byte
	id   uint32
}

type cacheSlot struct {
	entryID
	value string // the encoded entry
	key   string // kind + value key (see valueKey)
	ref   bool
	live  bool
}

// cacheSlotOverhead approximates what an entry costs besides its strings:
// the slot and one entry in each map.
const cacheSlotOverhead = 120

func (c *cacheSlot) size() int64 {
	n := int64(len(c.key)) + cacheSlotOverhead
	if len(c.value)+1 != len(c.key) || c.key[1:] != c.value {
		n += int64(len(c.value)) // not shared with the key
	}
	return n
}

func newEntryCache(budget int64) *entryCache {
	return &entryCache{budget: budget, byID: make(map[entryID]int32), byValue: make(map[string]int32)}
}

// get returns the encoded entry of an id.
func (c *entryCache) get(kind byte, id uint32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(kind, id)
}

func (c *entryCache) getLocked(kind byte, id uint32) (string, bool) {
	i, ok := c.byID[entryID{kind, id}]
	if !ok {
		c.misses++
		return "", false
	}
	c.hits++
	c.slots[i].ref = true
	return c.slots[i].value, true
}

// lookup returns the id and encoded entry of a value key.
func (c *entryCache) lookup(kind byte, key []byte) (uint32, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scratch = append(append(c.scratch[:0], kind), key...)
	i, ok := c.byValue[string(c.scratch)]
	if !ok {
		c.misses++
		return 0, "", false
	}
	c.hits++
	c.slots[i].ref = true
	return c.slots[i].id, c.slots[i].value, true
}

// add caches an entry; key is its value key (see valueKey). referenced
// entries survive the next pass of the hand.
func (c *entryCache) add(kind byte, id uint32, value string, key []byte, referenced bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(kind, id, value, key, referenced)
}

func (c *entryCache) addLocked(kind byte, id uint32, value string, key []byte, referenced bool) {
	eid := entryID{kind, id}
	if _, ok := c.byID[eid]; ok {
		return
	}
	var k string
	if string(key) == value {
		k = string(kind) + value // the value is then k[1:], one allocation
		value = k[1:]
	} else {
		k = string(append([]byte{kind}, key...))
	}
	if _, ok := c.byValue[k]; ok {
		// Another id for the same value (a duplicate written when the
		// first had left the cache): keep the one cached.
		return
	}
	slot := cacheSlot{entryID: eid, value: value, key: k, ref: referenced, live: true}
	size := slot.size()
	if size > c.budget {
		return
	}
	for c.bytes+size > c.budget {
		c.evictOne()
	}
	var i int32
	if n := len(c.free); n > 0 {
		i = c.free[n-1]
		c.free = c.free[:n-1]
		c.slots[i] = slot
	} else {
		i = int32(len(c.slots))
		c.slots = append(c.slots, slot)
	}
	c.byID[eid] = i
	c.byValue[k] = i
	c.bytes += size
}

// evictOne moves the hand to the first unreferenced entry, clearing the
// reference bits it passes, and evicts it.
func (c *entryCache) evictOne() {
	for {
		if c.hand >= len(c.slots) {
			c.hand = 0
		}
		s := &c.slots[c.hand]
		c.hand++
		if !s.live {
			continue
		}
		if s.ref {
			s.ref = false
			continue
		}
		c.evictions++
		c.drop(int32(c.hand - 1))
		return
	}
}

func (c *entryCache) drop(i int32) {
	s := &c.slots[i]
	c.bytes -= s.size()
	delete(c.byID, s.entryID)
	delete(c.byValue, s.key)
	*s = cacheSlot{}
	c.free = append(c.free, i)
}

// remove forgets an entry (deleted from disk).
func (c *entryCache) remove(kind byte, id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.byID[entryID{kind, id}]; ok {
		c.drop(i)
	}
}

// cacheStats are the dictionary cache's figures for Stats.
type cacheStats struct {
	bytes, budget           int64
	entries                 int
	hits, misses, evictions uint64
}

func (c *entryCache) stats() cacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cacheStats{bytes: c.bytes, budget: c.budget, entries: len(c.byID), hits: c.hits, misses: c.misses, evictions: c.evictions}
}
