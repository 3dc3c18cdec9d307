package storage

import (
	"testing"
	"time"
)

func TestStickyForgettingRaisesFloor(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newStickyLSNs(time.Minute, 2)
	s.put("a", 100, now)
	s.put("b", 200, now)
	if got := s.need("a", now); got != 100 {
		t.Fatalf("need(a) = %d, want 100", got)
	}
	if got := s.need("zzz", now); got != 0 {
		t.Fatalf("unknown key before any eviction: need = %d, want 0", got)
	}
	// A third key evicts the others; their positions survive as the floor.
	s.put("c", 150, now)
	if got := s.need("a", now); got != 200 {
		t.Fatalf("evicted key: need = %d, want floor 200", got)
	}
	// Expiry also raises the floor instead of forgetting.
	later := now.Add(2 * time.Minute)
	s.put("d", 300, now)
	if got := s.need("d", later); got != 300 {
		t.Fatalf("expired key: need = %d, want 300", got)
	}
	if got := s.need("other", later); got != 300 {
		t.Fatalf("floor after expiry = %d, want 300", got)
	}
}

// A write whose position is unknown pins its key to the primary until it
// expires, without raising the floor for every other key; a position
// read later covers it.
func TestStickyPin(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newStickyLSNs(time.Minute, 10)
	s.pin("a", now)
	if got := s.need("a", now); got != pinned {
		t.Fatalf("pinned key: need = %d, want %d", got, pinned)
	}
	if got := s.need("other", now.Add(2*time.Minute)); got != 0 {
		t.Fatalf("another key after the pin expired: need = %d, want 0", got)
	}
	if got := s.need("a", now.Add(2*time.Minute)); got != 0 {
		t.Fatalf("expired pin: need = %d, want 0", got)
	}
	s.pin("b", now)
	s.put("b", 500, now)
	if got := s.need("b", now); got != 500 {
		t.Fatalf("position after a pin: need = %d, want 500", got)
	}
}
