package leasetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// RoundTrips says how many requests CheckRoundTrips allows an Acquire of a
// held key; every other operation must be one request.
type RoundTrips struct {
	// HeldAcquire is the most requests an Acquire that finds the key held
	// may send (a backend may read the holder with a second one, so that
	// its free-key Acquire stays a single cheap write). Default 1.
	HeldAcquire int
}

// CheckRoundTrips checks that Acquire of a free key (one leased before),
// Renew and Release each cost one request to the store, and an Acquire of
// a held key at most limits.HeldAcquire. sent counts the requests lk has
// made so far (a pgx tracer, a go-redis hook). A first round on the same
// key comes before the counting, so that what a backend does once per
// connection or once per key (preparing statements, loading scripts,
// creating the key's row) does not count.
func CheckRoundTrips(t *testing.T, lk lease.Locker, sent func() int64, limits RoundTrips) {
	t.Helper()
	ctx := t.Context()
	held := max(limits.HeldAcquire, 1)
	var l lease.Lease
	steps := []struct {
		name string
		max  int64
		fn   func(key string) error
	}{
		{"Acquire", 1, func(key string) (err error) { l, err = lk.Acquire(ctx, key, time.Minute); return err }},
		{"Acquire of a held key", int64(held), func(key string) error {
			if _, err := lk.Acquire(ctx, key, time.Minute); !errors.Is(err, lease.ErrHeld) {
				return err
			}
			return nil
		}},
		{"Renew", 1, func(string) error { return l.Renew(ctx) }},
		{"Release", 1, func(string) error { return l.Release(ctx) }},
	}
	const key = "round-trips"
	for _, s := range steps {
		if err := s.fn(key); err != nil {
			t.Fatalf("warm-up %s: %v", s.name, err)
		}
	}
	for _, s := range steps {
		before := sent()
		if err := s.fn(key); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := sent() - before; n < 1 || n > s.max {
			t.Errorf("%s sent %d requests, want 1 to %d", s.name, n, s.max)
		}
	}
}

// CheckHolderNames checks what a HeldError says about the holder: named
// is a Locker whose holder name was set to name, unnamed one left to its
// default, defaultName. Each in turn holds a key that the other then asks
// for; the error must name the key, the holder and an expiry within the
// ttl.
func CheckHolderNames(t *testing.T, named lease.Locker, name string, unnamed lease.Locker, defaultName string) {
	t.Helper()
	const key, ttl = "holder-names", time.Minute
	for _, c := range []struct {
		holder, asker lease.Locker
		want          string
	}{
		{named, unnamed, name},
		{unnamed, named, defaultName},
	} {
		l := mustAcquire(t, c.holder, key, ttl)
		before := time.Now()
		_, err := c.asker.Acquire(t.Context(), key, ttl)
		var held *lease.HeldError
		switch {
		case !errors.As(err, &held):
			t.Errorf("Acquire of a held key: %v, want a *lease.HeldError", err)
		case held.Holder != c.want:
			t.Errorf("HeldError.Holder = %q, want %q", held.Holder, c.want)
		case held.ExpiresAt.Before(before) || held.ExpiresAt.After(before.Add(ttl+time.Second)):
			t.Errorf("HeldError.ExpiresAt = %s, want within the ttl (%s) from %s", held.ExpiresAt, ttl, before)
		case !strings.Contains(err.Error(), `"`+key+`" is held by `+c.want+" until "):
			t.Errorf("error %q does not name the key, the holder and the expiry", err)
		}
		mustRelease(t, l)
	}
}
