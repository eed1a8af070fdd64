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
	mu     sync.Mutex
	budget int64
	bytes  int64
	// Maps per kind, from id and from value key (see valueKey) to slot:
	// smaller maps than one for all kinds, and faster to probe.
	byID    [numKinds]map[uint32]int32
	byValue [numKinds]map[string]int32
	slots   []cacheSlot
	free    []int32
	hand    int

	hits, misses, evictions uint64
}

type entryID struct {
	kind byte
	id   uint32
}

type cacheSlot struct {
	entryID
	value  string // the encoded entry
	key    string // its value key: the same string but for mappings
	ref    bool
	live   bool
	pinned bool // not yet on disk: never evicted
}

// cacheSlotOverhead approximates what an entry costs besides its strings:
// the slot and one entry in each map.
const cacheSlotOverhead = 120

func (c *cacheSlot) size() int64 {
	n := int64(len(c.value)) + cacheSlotOverhead
	if c.kind == kindMapping {
		n += int64(len(c.key))
	}
	return n
}

const numKinds = 5

// kindIndex numbers the kinds from 0.
func kindIndex(kind byte) int {
	switch kind {
	case kindFunction:
		return 0
	case kindMapping:
		return 1
	case kindLocation:
		return 2
	case kindStack:
		return 3
	default:
		return 4
	}
}

func newEntryCache(budget int64) *entryCache {
	c := &entryCache{budget: budget}
	for i := range numKinds {
		c.byID[i] = make(map[uint32]int32)
		c.byValue[i] = make(map[string]int32)
	}
	return c
}

// get returns the encoded entry of an id.
func (c *entryCache) get(kind byte, id uint32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(kind, id)
}

func (c *entryCache) getLocked(kind byte, id uint32) (string, bool) {
	i, ok := c.byID[kindIndex(kind)][id]
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
	i, ok := c.byValue[kindIndex(kind)][string(key)]
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

// addPinned caches an entry that is not on disk yet, until unpin or
// remove; it may take the cache over its budget for that long.
func (c *entryCache) addPinned(kind byte, id uint32, value string, key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.addLocked(kind, id, value, key, true); i >= 0 {
		c.slots[i].pinned = true
	}
}

func (c *entryCache) unpin(kind byte, id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.byID[kindIndex(kind)][id]; ok {
		c.slots[i].pinned = false
	}
}

// addLocked caches an entry and returns its slot, or -1 if it was not
// added (already there, or another id has the same value).
func (c *entryCache) addLocked(kind byte, id uint32, value string, key []byte, referenced bool) int32 {
	eid := entryID{kind, id}
	ki := kindIndex(kind)
	if _, ok := c.byID[ki][id]; ok {
		return -1
	}
	k := value
	if kind == kindMapping {
		k = string(key)
	}
	if _, ok := c.byValue[ki][k]; ok {
		// Another id for the same value (a duplicate written when the
		// first had left the cache): keep the one cached.
		return -1
	}
	slot := cacheSlot{entryID: eid, value: value, key: k, ref: referenced, live: true}
	size := slot.size()
	for c.bytes+size > c.budget && c.evictOne() {
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
	c.byID[ki][id] = i
	c.byValue[ki][k] = i
	c.bytes += size
	return i
}

// evictOne moves the hand to the first unreferenced entry, clearing the
// reference bits it passes, and evicts it. It reports false if there is
// nothing it may evict.
func (c *entryCache) evictOne() bool {
	for range 2 * len(c.slots) {
		if c.hand >= len(c.slots) {
			c.hand = 0
		}
		s := &c.slots[c.hand]
		c.hand++
		if !s.live || s.pinned {
			continue
		}
		if s.ref {
			s.ref = false
			continue
		}
		c.evictions++
		c.drop(int32(c.hand - 1))
		return true
	}
	return false
}

func (c *entryCache) drop(i int32) {
	s := &c.slots[i]
	c.bytes -= s.size()
	delete(c.byID[kindIndex(s.kind)], s.id)
	delete(c.byValue[kindIndex(s.kind)], s.key)
	*s = cacheSlot{}
	c.free = append(c.free, i)
}

// remove forgets an entry (deleted from disk).
func (c *entryCache) remove(kind byte, id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.byID[kindIndex(kind)][id]; ok {
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
	entries := 0
	for _, m := range c.byID {
		entries += len(m)
	}
	return cacheStats{bytes: c.bytes, budget: c.budget, entries: entries, hits: c.hits, misses: c.misses, evictions: c.evictions}
}
