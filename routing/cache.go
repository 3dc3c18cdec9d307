package routing

import (
	"maps"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// routeCache remembers routes by worker ID. Readers load an immutable
// snapshot through an atomic pointer, so hits take no lock and do not
// allocate. Writers add to a mutex-guarded dirty map that holds every entry
// and publish a snapshot of it once the misses since the last publish exceed
// the published size: filling the cache costs amortised O(1) copies per entry
// instead of a copy per miss. A hit is only a candidate until
// cacheEntry.matches confirms the worker's routing attributes.
type routeCache struct {
	read  atomic.Pointer[cacheSnapshot]
	limit int

	mu     sync.Mutex
	dirty  map[string]*cacheEntry
	misses int
}

// cacheEntry is one remembered route with the worker attributes it was
// computed from; it is used only while they still match. It holds only the
// routing attributes, in 128 bytes (two cache lines), because a hit reads all
// of it.
type cacheEntry struct {
	queueName        string
	featureCategory  string
	urgency          string
	resourceBoundary string
	queueNamespace   string
	tags             []string // a copy: the caller may reuse its slice
	queue            string   // the cached route
	// hasClass: WorkerName was set (and equals the key); otherwise it was
	// empty and QueueName is the key. This replaces storing WorkerName.
	hasClass                bool
	hasExternalDependencies bool
	nilAttrs, stringAttrs   Attribute
}

func newCacheEntry(w *Worker, queue string) *cacheEntry {
	return &cacheEntry{
		queueName:               w.QueueName,
		featureCategory:         w.FeatureCategory,
		urgency:                 w.Urgency,
		resourceBoundary:        w.ResourceBoundary,
		queueNamespace:          w.QueueNamespace,
		tags:                    slices.Clone(w.Tags),
		queue:                   queue,
		hasClass:                w.WorkerName != "",
		hasExternalDependencies: w.HasExternalDependencies,
		nilAttrs:                w.Nil,
		stringAttrs:             w.Strings,
	}
}

// matches reports whether w, found under this entry's key (w.ID()), has the
// attributes the entry was computed from. Together with the key this covers
// every attribute routing reads: WorkerName equals the key when hasClass, and
// is empty otherwise.
func (e *cacheEntry) matches(w *Worker) bool {
	return e.hasClass == (w.WorkerName != "") &&
		e.hasExternalDependencies == w.HasExternalDependencies &&
		e.nilAttrs == w.Nil && e.stringAttrs == w.Strings &&
		sameString(e.queueName, w.QueueName) &&
		sameString(e.featureCategory, w.FeatureCategory) &&
		sameString(e.urgency, w.Urgency) &&
		sameString(e.resourceBoundary, w.ResourceBoundary) &&
		sameString(e.queueNamespace, w.QueueNamespace) &&
		sameTags(e.tags, w.Tags)
}

func newRouteCache(limit int) *routeCache {
	return &routeCache{limit: limit, dirty: make(map[string]*cacheEntry)}
}

func (c *routeCache) get(w *Worker) (string, bool) {
	s := c.read.Load()
	if s == nil {
		return "", false
	}
	id := w.ID()
	e := s.lookupFast(id)
	if e == nil {
		e = s.byID[id]
	}
	if e == nil || !e.matches(w) {
		return "", false
	}
	return e.queue, true
}

func (c *routeCache) put(w *Worker, queue string) {
	e := newCacheEntry(w, queue)
	id := w.ID()

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) >= c.limit {
		if _, replacing := c.dirty[id]; !replacing {
			clear(c.dirty)
		}
	}
	c.dirty[id] = e
	c.misses++
	published := 0
	if s := c.read.Load(); s != nil {
		published = len(s.byID)
	}
	if c.misses > published || len(c.dirty) < published {
		c.read.Store(newCacheSnapshot(c.dirty))
		c.misses = 0
	}
}

// cacheSnapshot is an immutable published state of the cache. Besides the
// map by ID it has a direct-mapped table indexed by the address of the ID
// string's bytes: a caller that routes the same Worker value again (the usual
// case: workers come from a registry) passes the very same string, and is
// found without hashing its bytes. Anything else falls back to the map.
type cacheSnapshot struct {
	byID  map[string]*cacheEntry
	fast  []fastSlot // length a power of two
	shift uint       // 64 - log2(len(fast))
}

type fastSlot struct {
	id    string // the map key; holding it keeps its address unique
	entry *cacheEntry
}

func newCacheSnapshot(entries map[string]*cacheEntry) *cacheSnapshot {
	s := &cacheSnapshot{byID: maps.Clone(entries)}
	size := uint(1)
	for size < 2*uint(len(entries)) {
		size <<= 1
	}
	s.fast = make([]fastSlot, size)
	s.shift = 64 - uint(bits.TrailingZeros(size))
	for id, e := range s.byID {
		if id != "" {
			s.fast[s.slot(id)] = fastSlot{id: id, entry: e}
		}
	}
	return s
}

// slot hashes the address of id's bytes (Fibonacci hashing).
func (s *cacheSnapshot) slot(id string) uint64 {
	p := uint64(uintptr(unsafe.Pointer(unsafe.StringData(id))))
	return (p * 0x9E3779B97F4A7C15) >> s.shift
}

// lookupFast returns the entry stored under exactly these string bytes, or nil.
func (s *cacheSnapshot) lookupFast(id string) *cacheEntry {
	if id == "" {
		return nil
	}
	f := &s.fast[s.slot(id)]
	if unsafe.StringData(f.id) == unsafe.StringData(id) && len(f.id) == len(id) {
		return f.entry
	}
	return nil
}

// sameString is a == b with an inlined shortcut for the usual cache hit, where
// both share their bytes because the caller passes the same Worker again: it
// saves a runtime call per attribute on Route's hot path.
func sameString(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

func sameTags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameString(a[i], b[i]) {
			return false
		}
	}
	return true
}
