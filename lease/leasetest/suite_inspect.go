package leasetest

import (
	"errors"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// testInspect checks lease.Inspector, for Lockers that implement it: a
// free key, a held one (holder, token, expiry), a released one, and bad
// keys; inspecting never takes the key.
func testInspect(t *testing.T, lk lease.Locker) {
	if _, ok := lk.(lease.Inspector); !ok {
		t.Skipf("%T does not implement lease.Inspector", lk)
	}
	ctx := t.Context()
	inspect := func(key string) lease.Holding {
		t.Helper()
		h, err := lease.Inspect(ctx, lk, key)
		if err != nil {
			t.Fatalf("Inspect(%q): %v", key, err)
		}
		if h.Key != key {
			t.Fatalf("Inspect(%q).Key = %q", key, h.Key)
		}
		return h
	}
	if h := inspect("jobs/inspect"); h.Held || h.Holder != "" || !h.ExpiresAt.IsZero() {
		t.Errorf("a key never leased: %+v, want not held", h)
	}
	// Inspecting did not take it.
	l := mustAcquire(t, lk, "jobs/inspect", time.Minute)
	h := inspect("jobs/inspect")
	if !h.Held {
		t.Fatalf("a held key: %+v, want Held", h)
	}
	if h.Token != l.Token() {
		t.Errorf("held key: Token %d, want the lease's %d", h.Token, l.Token())
	}
	// The backend's clock may differ a little from ours; the expiry is
	// within the ttl of now.
	if d := time.Until(h.ExpiresAt); d <= 0 || d > time.Minute+5*time.Second {
		t.Errorf("held key: ExpiresAt %s is %s from now, want within the 1m ttl", h.ExpiresAt, d)
	}
	expectHeld(t, lk, "jobs/inspect")
	mustRelease(t, l)
	if h := inspect("jobs/inspect"); h.Held || !h.ExpiresAt.IsZero() || h.Holder != "" {
		t.Errorf("a released key: %+v, want not held", h)
	} else if h.Token != 0 && h.Token != l.Token() {
		t.Errorf("a released key: Token %d, want the last one (%d) or 0", h.Token, l.Token())
	}
	// Expiry ends a lease for Inspect too.
	short := mustAcquire(t, lk, "jobs/inspect-expiry", 50*time.Millisecond)
	time.Sleep(120 * time.Millisecond)
	if h := inspect("jobs/inspect-expiry"); h.Held {
		t.Errorf("an expired lease (token %d): %+v, want not held", short.Token(), h)
	}
	for _, key := range []string{"", "a\xffb", "a\x00b"} {
		if _, err := lease.Inspect(ctx, lk, key); !errors.Is(err, lease.ErrInvalid) {
			t.Errorf("Inspect(%q): got %v, want an error wrapping lease.ErrInvalid", key, err)
		}
	}
}
