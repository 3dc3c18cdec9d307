package routing

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// routeCache remembers routes by worker ID. Readers load an immutable map
// through an atomic pointer, so hits take no lock and do not allocate.
// Writers add to a mutex-guarded dirty map that holds every entry and publish
// a copy of it once the misses since the last publish reach the published
// map's size: filling the cache costs amortised O(1) copies per entry instead
// of a copy per miss.
type routeCache struct {
	read  atomic.Pointer[map[string]*cacheEntry]
	limit int

	mu     sync.Mutex
	dirty  map[string]*cacheEntry
	misses int
}

// cacheEntry is one remembered route with the worker attributes it was
// computed from; the entry is used only while they still match.
type cacheEntry struct {
	worker Worker // Tags cloned: the caller may reuse its slice
	queue  string
}

func newRouteCache(limit int) *routeCache {
	return &routeCache{limit: limit, dirty: make(map[string]*cacheEntry)}
}

func (c *routeCache) get(w *Worker) (string, bool) {
	m := c.read.Load()
	if m == nil {
		return "", false
	}
	e := (*m)[w.ID()]
	if e == nil || !sameRoute(&e.worker, w) {
		return "", false
	}
	return e.queue, true
}

func (c *routeCache) put(w *Worker, queue string) {
	e := &cacheEntry{worker: *w, queue: queue}
	e.worker.Tags = slices.Clone(w.Tags)

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) >= c.limit {
		if _, replacing := c.dirty[w.ID()]; !replacing {
			clear(c.dirty)
		}
	}
	c.dirty[w.ID()] = e
	c.misses++
	published := 0
	if m := c.read.Load(); m != nil {
		published = len(*m)
	}
	if c.misses > published || len(c.dirty) < published {
		snapshot := maps.Clone(c.dirty)
		c.read.Store(&snapshot)
		c.misses = 0
	}
}
