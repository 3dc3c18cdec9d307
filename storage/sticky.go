package storage

import (
	"sync"
	"time"
)

// stickyLSNs remembers, per sticky key, the WAL position a read must wait
// for. Forgotten keys (expired or evicted) raise a shared floor instead of
// vanishing, so a forgotten write is still never read stale.
type stickyLSNs struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	keys  map[string]stickyLSN
	floor uint64
}

type stickyLSN struct {
	lsn uint64
	at  time.Time
}

// pinned is the position of a key whose write's position is unknown: no
// replica has replayed it, so its reads go to the primary until it is
// forgotten. Forgetting it does not raise the floor (that would send every
// read to the primary for good).
const pinned = ^uint64(0)

func newStickyLSNs(ttl time.Duration, maxKeys int) *stickyLSNs {
	return &stickyLSNs{ttl: ttl, max: maxKeys, keys: make(map[string]stickyLSN)}
}

// need is the WAL position a read for key must see.
func (s *stickyLSNs) need(key string, now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.keys[key]
	if !ok {
		return s.floor
	}
	if now.Sub(e.at) > s.ttl {
		s.forget(key, e)
		return s.floor
	}
	return max(e.lsn, s.floor)
}

func (s *stickyLSNs) put(key string, lsn uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A position read after a pinned key's write covers that write too.
	if e, ok := s.keys[key]; ok && e.lsn > lsn && e.lsn != pinned {
		lsn = e.lsn
	}
	if _, ok := s.keys[key]; !ok && len(s.keys) >= s.max {
		for k, e := range s.keys {
			if now.Sub(e.at) > s.ttl {
				s.forget(k, e)
			}
		}
		if len(s.keys) >= s.max {
			for k, e := range s.keys {
				s.forget(k, e)
			}
		}
	}
	s.keys[key] = stickyLSN{lsn: lsn, at: now}
}

// pin sends key's reads to the primary until it is forgotten (ttl).
func (s *stickyLSNs) pin(key string, now time.Time) { s.put(key, pinned, now) }

func (s *stickyLSNs) forget(key string, e stickyLSN) {
	delete(s.keys, key)
	if e.lsn != pinned {
		s.floor = max(s.floor, e.lsn)
	}
}
