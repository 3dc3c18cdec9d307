package leasetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// CheckRoundTrips checks that Acquire (of a free key and of a held one),
// Renew and Release each cost one request to the store. sent counts the
// requests lk has made so far (a pgx tracer, a go-redis hook). A first
// round on another key comes before the counting, so that what a backend
// does once per connection (preparing statements, loading scripts) does
// not count.
func CheckRoundTrips(t *testing.T, lk lease.Locker, sent func() int64) {
	t.Helper()
	ctx := t.Context()
	var l lease.Lease
	steps := []struct {
		name string
		fn   func(key string) error
	}{
		{"Acquire", func(key string) (err error) { l, err = lk.Acquire(ctx, key, time.Minute); return err }},
		{"Acquire of a held key", func(key string) error {
			if _, err := lk.Acquire(ctx, key, time.Minute); !errors.Is(err, lease.ErrHeld) {
				return err
			}
			return nil
		}},
		{"Renew", func(string) error { return l.Renew(ctx) }},
		{"Release", func(string) error { return l.Release(ctx) }},
	}
	for _, s := range steps {
		if err := s.fn("round-trips/warm-up"); err != nil {
			t.Fatalf("warm-up %s: %v", s.name, err)
		}
	}
	for _, s := range steps {
		before := sent()
		if err := s.fn("round-trips"); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := sent() - before; n != 1 {
			t.Errorf("%s sent %d requests, want 1", s.name, n)
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
