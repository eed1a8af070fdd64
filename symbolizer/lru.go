package symbolizer

import "container/list"

// lru is a bounded map that evicts the least recently used entries. It is
// bounded by entry count and, for entries added with a size, by the sum of
// their approximate sizes in bytes. It is not safe for concurrent use; the
// Symbolizer's mutex guards it.
type lru[K comparable, V any] struct {
	max      int
	maxBytes int64 // 0: no byte bound
	bytes    int64
	order    *list.List // front = most recently used; values are *lruEntry
	entries  map[K]*list.Element
	// evicted counts entries dropped to stay within the bounds.
	evicted uint64
}

type lruEntry[K comparable, V any] struct {
	key   K
	value V
	bytes int64
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), entries: make(map[K]*list.Element)}
}

// newSizedLRU returns an LRU that also keeps the sum of its entries' sizes
// at or under maxBytes (the newest entry is kept even when it alone is over).
func newSizedLRU[K comparable, V any](max int, maxBytes int64) *lru[K, V] {
	c := newLRU[K, V](max)
	c.maxBytes = maxBytes
	return c
}

func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).value, true
}

func (c *lru[K, V]) add(k K, v V) { c.addSized(k, v, 0) }

// addSized adds or replaces an entry that costs about n bytes.
func (c *lru[K, V]) addSized(k K, v V, n int64) {
	if e, ok := c.entries[k]; ok {
		le := e.Value.(*lruEntry[K, V])
		c.bytes += n - le.bytes
		le.value, le.bytes = v, n
		c.order.MoveToFront(e)
	} else {
		c.entries[k] = c.order.PushFront(&lruEntry[K, V]{key: k, value: v, bytes: n})
		c.bytes += n
	}
	c.trim()
}

// resize updates the size of an entry whose value grew (tables filled in
// lazily) and evicts others if the budget is now exceeded.
func (c *lru[K, V]) resize(k K, n int64) {
	e, ok := c.entries[k]
	if !ok {
		return
	}
	le := e.Value.(*lruEntry[K, V])
	c.bytes += n - le.bytes
	le.bytes = n
	c.trim()
}

// setMaxBytes changes the byte bound (n > 0) and evicts down to it.
func (c *lru[K, V]) setMaxBytes(n int64) {
	c.maxBytes = max(n, 1)
	c.trim()
}

func (c *lru[K, V]) trim() {
	for c.order.Len() > c.max || (c.maxBytes > 0 && c.bytes > c.maxBytes && c.order.Len() > 1) {
		oldest := c.order.Back()
		le := oldest.Value.(*lruEntry[K, V])
		c.order.Remove(oldest)
		delete(c.entries, le.key)
		c.bytes -= le.bytes
		c.evicted++
	}
}

func (c *lru[K, V]) len() int { return c.order.Len() }
