package web

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// flameCache keeps the encoded answers of flame-graph queries over ranges
// wholly in the past, which a UI asks for again and again (a reload, a
// shared link, back and forth between views) and which cost the store up
// to seconds each. It is an LRU bounded by the bytes of the gzipped JSON it
// holds; entries also expire after ttl, so that what retention deletes
// stops being shown soon after.
type flameCache struct {
	maxBytes int
	ttl      time.Duration

	mu    sync.Mutex
	bytes int
	order *list.List // of *flameEntry, most recently used first
	items map[flameKey]*list.Element
}

// flameKey is a flame-graph query in normal form.
type flameKey struct {
	fromNanos, toNanos int64
	query, sampleType  string
	maxNodes           int
	groupBy            string
	maxOther           float64
	format             string // the answer's Content-Type
}

type flameEntry struct {
	key     flameKey
	gzipped []byte // the JSON answer, gzipped
	added   time.Time
}

func newFlameCache(maxBytes int, ttl time.Duration) *flameCache {
	return &flameCache{maxBytes: maxBytes, ttl: ttl, order: list.New(), items: make(map[flameKey]*list.Element)}
}

// newFlameKey normalizes the selector's spelling of "everything".
func newFlameKey(from, to time.Time, query, sampleType string, maxNodes int) flameKey {
	query = strings.TrimSpace(query)
	if query == "{}" {
		query = ""
	}
	return flameKey{fromNanos: from.UnixNano(), toNanos: to.UnixNano(), query: query, sampleType: sampleType, maxNodes: maxNodes}
}

func (c *flameCache) get(k flameKey, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*flameEntry)
	if now.Sub(e.added) > c.ttl {
		c.remove(el)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.gzipped, true
}

// put adds an answer, dropping the least recently used past the budget. An
// answer larger than a quarter of the budget is not kept: it would push out
// many smaller ones.
func (c *flameCache) put(k flameKey, gzipped []byte, now time.Time) {
	if len(gzipped) > c.maxBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.remove(el)
	}
	c.items[k] = c.order.PushFront(&flameEntry{key: k, gzipped: gzipped, added: now})
	c.bytes += len(gzipped)
	for c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
}

func (c *flameCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*flameEntry)
	delete(c.items, e.key)
	c.bytes -= len(e.gzipped)
}

func (c *flameCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
