package leasetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// Run is the conformance suite for lease.Locker implementations. newLocker
// returns a Locker on a fresh, empty backend (or one with keys that no
// other test uses); it is called once per subtest, and the subtests run in
// parallel. The suite takes a few seconds: expiry is tested with real
// time, so the backend's clock must be the real one.
func Run(t *testing.T, newLocker func(t *testing.T) lease.Locker) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, lk lease.Locker)
	}{
		{"Acquire", testAcquire},
		{"HeldKey", testHeldKey},
		{"ReleaseFreesKey", testReleaseFreesKey},
		{"ReleaseIsIdempotent", testReleaseIdempotent},
		{"RenewAfterRelease", testRenewAfterRelease},
		{"Expiry", testExpiry},
		{"RenewExtends", testRenewExtends},
		{"TokensIncrease", testTokensIncrease},
		{"KeysAreIndependent", testKeysIndependent},
		{"UnusualKeys", testUnusualKeys},
		{"BadInput", testBadInput},
		{"CancelledContext", testCancelledContext},
		{"ConcurrentUseOfALease", testConcurrentUse},
		{"Guard", testGuard},
		{"Contention", testContention},
		{"Break", testBreak},
		{"Inspect", testInspect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newLocker(t))
		})
	}
}

func mustAcquire(t *testing.T, lk lease.Locker, key string, ttl time.Duration) lease.Lease {
	t.Helper()
	l, err := lk.Acquire(t.Context(), key, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q, %s): %v", key, ttl, err)
	}
	if l == nil {
		t.Fatalf("Acquire(%q, %s) returned a nil lease and no error", key, ttl)
	}
	return l
}

func mustRelease(t *testing.T, l lease.Lease) {
	t.Helper()
	if err := l.Release(t.Context()); err != nil {
		t.Fatalf("Release(%q, token %d): %v", l.Key(), l.Token(), err)
	}
}

func expectHeld(t *testing.T, lk lease.Locker, key string) {
	t.Helper()
	l, err := lk.Acquire(t.Context(), key, time.Minute)
	if err == nil {
		t.Fatalf("Acquire(%q) succeeded (token %d) while the key is held", key, l.Token())
	}
	if !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("Acquire(%q) on a held key: got %v, want an error wrapping lease.ErrHeld", key, err)
	}
}

func expectLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, lease.ErrLost) {
		t.Fatalf("%s: got %v, want an error wrapping lease.ErrLost", what, err)
	}
}

func testAcquire(t *testing.T, lk lease.Locker) {
	before := time.Now()
	l := mustAcquire(t, lk, "jobs/acquire", time.Minute)
	after := time.Now()
	if l.Key() != "jobs/acquire" {
		t.Errorf("Key() = %q, want %q", l.Key(), "jobs/acquire")
	}
	if l.Token() <= 0 {
		t.Errorf("Token() = %d, want > 0", l.Token())
	}
	if exp := l.ExpiresAt(); exp.Before(before.Add(time.Minute)) || exp.After(after.Add(time.Minute)) {
		t.Errorf("ExpiresAt() = %s, want between %s and %s (request time + ttl)", exp, before.Add(time.Minute), after.Add(time.Minute))
	}
	mustRelease(t, l)
}

func testHeldKey(t *testing.T, lk lease.Locker) {
	l := mustAcquire(t, lk, "jobs/held", time.Minute)
	_, err := lk.Acquire(t.Context(), "jobs/held", time.Minute)
	if !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second Acquire: got %v, want an error wrapping lease.ErrHeld", err)
	}
	var held *lease.HeldError
	if !errors.As(err, &held) {
		t.Errorf("second Acquire: error %v is not a *lease.HeldError", err)
	} else if held.Key != "jobs/held" {
		t.Errorf("HeldError.Key = %q, want %q", held.Key, "jobs/held")
	}
	if !strings.Contains(err.Error(), "jobs/held") {
		t.Errorf("error %q does not name the key", err)
	}
	mustRelease(t, l)
}

func testReleaseFreesKey(t *testing.T, lk lease.Locker) {
	a := mustAcquire(t, lk, "jobs/release", time.Minute)
	mustRelease(t, a)
	b := mustAcquire(t, lk, "jobs/release", time.Minute)
	if b.Token() <= a.Token() {
		t.Errorf("token after release = %d, want > %d", b.Token(), a.Token())
	}
	// The first lease's Release must not free the second one.
	if err := a.Release(t.Context()); err != nil {
		t.Errorf("releasing the first lease again: %v, want nil", err)
	}
	expectHeld(t, lk, "jobs/release")
	mustRelease(t, b)
}

func testReleaseIdempotent(t *testing.T, lk lease.Locker) {
	l := mustAcquire(t, lk, "jobs/idempotent", time.Minute)
	for i := range 3 {
		if err := l.Release(t.Context()); err != nil {
			t.Fatalf("Release #%d: %v", i+1, err)
		}
	}
}

func testRenewAfterRelease(t *testing.T, lk lease.Locker) {
	l := mustAcquire(t, lk, "jobs/renew-released", time.Minute)
	mustRelease(t, l)
	expectLost(t, "Renew after Release", l.Renew(t.Context()))
}

func testExpiry(t *testing.T, lk lease.Locker) {
	const ttl = 150 * time.Millisecond
	old := mustAcquire(t, lk, "jobs/expiry", ttl)
	time.Sleep(ttl + 100*time.Millisecond)
	next, err := lease.Wait(t.Context(), lk, "jobs/expiry", time.Minute, lease.WaitOptions{})
	if err != nil {
		t.Fatalf("Acquire after the ttl: %v", err)
	}
	if next.Token() <= old.Token() {
		t.Errorf("token after expiry = %d, want > %d", next.Token(), old.Token())
	}
	expectLost(t, "Renew of the expired lease", old.Renew(t.Context()))
	expectLost(t, "Release of the expired lease", old.Release(t.Context()))
	expectLost(t, "second Release of the expired lease", old.Release(t.Context()))
	// Neither of those may have touched the new holder's lease.
	expectHeld(t, lk, "jobs/expiry")
	if err := next.Renew(t.Context()); err != nil {
		t.Errorf("new holder's Renew: %v", err)
	}
	mustRelease(t, next)
}

func testRenewExtends(t *testing.T, lk lease.Locker) {
	const ttl = time.Second
	l := mustAcquire(t, lk, "jobs/renew", ttl)
	first := l.ExpiresAt()
	time.Sleep(ttl / 2)
	if err := l.Renew(t.Context()); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if !l.ExpiresAt().After(first) {
		t.Errorf("ExpiresAt after Renew = %s, want after %s", l.ExpiresAt(), first)
	}
	// Sleep past the first expiry; the renewed lease must still hold as
	// long as its ExpiresAt (a lower bound) has not passed.
	time.Sleep(time.Until(first) + ttl/5)
	if time.Now().Before(l.ExpiresAt()) {
		expectHeld(t, lk, "jobs/renew")
	} else {
		t.Logf("machine too slow to check the renewed expiry (now %s, expiry %s)", time.Now(), l.ExpiresAt())
	}
	mustRelease(t, l)
}

func testTokensIncrease(t *testing.T, lk lease.Locker) {
	var last int64
	for i := range 20 {
		l := mustAcquire(t, lk, "jobs/tokens", time.Minute)
		if l.Token() <= last {
			t.Fatalf("acquisition %d: token %d, want > %d", i, l.Token(), last)
		}
		last = l.Token()
		mustRelease(t, l)
	}
}

func testKeysIndependent(t *testing.T, lk lease.Locker) {
	a := mustAcquire(t, lk, "jobs/a", time.Minute)
	b := mustAcquire(t, lk, "jobs/b", time.Minute)
	mustRelease(t, a)
	expectHeld(t, lk, "jobs/b")
	if err := b.Renew(t.Context()); err != nil {
		t.Errorf("Renew of b after releasing a: %v", err)
	}
	mustRelease(t, b)
}

func testUnusualKeys(t *testing.T, lk lease.Locker) {
	keys := []string{
		"a",
		strings.Repeat("k", lease.MaxKeyLen),
		strings.Repeat("é", lease.MaxKeyLen/2), // 254 bytes
		"group/project/image:tag@sha256",
		"with spaces and 'quotes' \"double\" ; DROP TABLE x; --",
		"{braces}",
		"}starts-with-brace",
		"%s %d \\ \n\t",
		"ключ-鍵-🔑",
	}
	for _, key := range keys {
		l := mustAcquire(t, lk, key, time.Minute)
		if l.Key() != key {
			t.Errorf("Key() = %q, want %q", l.Key(), key)
		}
		expectHeld(t, lk, key)
		mustRelease(t, l)
	}
}

func testBadInput(t *testing.T, lk lease.Locker) {
	long := strings.Repeat("k", lease.MaxKeyLen+1)
	cases := []struct {
		name string
		key  string
		ttl  time.Duration
		want string // in the message
	}{
		{"empty key", "", time.Minute, "empty"},
		{"key too long", long, time.Minute, "256 bytes"},
		{"invalid UTF-8", "a\xffb", time.Minute, "UTF-8"},
		{"NUL byte", "a\x00b", time.Minute, "NUL"},
		{"zero ttl", "k", 0, "not positive"},
		{"negative ttl", "k", -time.Second, "not positive"},
		{"sub-millisecond ttl", "k", time.Microsecond, "shorter"},
		{"ttl too long", "k", lease.MaxTTL + time.Second, "longer"},
		{"absurd ttl", "k", time.Duration(1<<63 - 1), "longer"},
	}
	for _, c := range cases {
		l, err := lk.Acquire(t.Context(), c.key, c.ttl)
		if err == nil {
			t.Errorf("%s: Acquire succeeded (token %d), want an error", c.name, l.Token())
			continue
		}
		if !errors.Is(err, lease.ErrInvalid) {
			t.Errorf("%s: got %v, want an error wrapping lease.ErrInvalid", c.name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.want)
		}
	}
	// Nothing was taken by the failed calls.
	mustRelease(t, mustAcquire(t, lk, "k", time.Minute))
}

func testCancelledContext(t *testing.T, lk lease.Locker) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if l, err := lk.Acquire(ctx, "jobs/cancelled", time.Minute); err == nil {
		t.Errorf("Acquire with a cancelled context succeeded (token %d)", l.Token())
		_ = l.Release(t.Context())
	}
	l := mustAcquire(t, lk, "jobs/cancelled", time.Minute)
	if err := l.Renew(ctx); err == nil {
		t.Errorf("Renew with a cancelled context succeeded")
	} else if errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew with a cancelled context: %v; the lease is not lost", err)
	}
	mustRelease(t, l)
}

func testGuard(t *testing.T, lk lease.Locker) {
	const ttl = 3 * time.Second
	var token int64
	err := lease.Guard(t.Context(), lk, "jobs/guard", ttl, func(ctx context.Context, l lease.Lease) error {
		token = l.Token()
		// Outlive the ttl: only renewals keep the lease.
		select {
		case <-ctx.Done():
			return fmt.Errorf("fn's context ended: %w", context.Cause(ctx))
		case <-time.After(ttl + ttl/3):
		}
		expectHeld(t, lk, "jobs/guard")
		return nil
	})
	if err != nil {
		t.Fatalf("Guard: %v", err)
	}
	l := mustAcquire(t, lk, "jobs/guard", time.Minute)
	if l.Token() <= token {
		t.Errorf("token after Guard = %d, want > %d", l.Token(), token)
	}
	mustRelease(t, l)
}

func testConcurrentUse(t *testing.T, lk lease.Locker) {
	l := mustAcquire(t, lk, "jobs/concurrent", time.Minute)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_ = l.Renew(t.Context())
			_ = l.ExpiresAt()
		})
		wg.Go(func() {
			if err := l.Release(t.Context()); err != nil {
				t.Errorf("concurrent Release: %v", err)
			}
		})
	}
	wg.Wait()
	mustRelease(t, mustAcquire(t, lk, "jobs/concurrent", time.Minute))
}

func testContention(t *testing.T, lk lease.Locker) {
	res := Contend(t, lk, "jobs/contended", 50, 2*time.Second)
	t.Logf("50 goroutines, 2s: %d acquisitions in %d attempts", res.Acquired, res.Attempts)
}

// testBreak checks lease.Breaker, for the lockers that implement it: a
// broken lease is lost to its holder and the key is free at once, with a
// larger token.
func testBreak(t *testing.T, lk lease.Locker) {
	b, ok := lk.(lease.Breaker)
	if !ok {
		t.Skipf("%T does not implement lease.Breaker", lk)
	}
	ctx := t.Context()
	if broke, err := b.Break(ctx, "jobs/break"); err != nil || broke {
		t.Fatalf("Break of a free key = %v, %v; want false, nil", broke, err)
	}
	l := mustAcquire(t, lk, "jobs/break", time.Hour)
	if broke, err := b.Break(ctx, "jobs/break"); err != nil || !broke {
		t.Fatalf("Break of a held key = %v, %v; want true, nil", broke, err)
	}
	next := mustAcquire(t, lk, "jobs/break", time.Minute)
	if next.Token() <= l.Token() {
		t.Errorf("token after Break = %d, want > %d", next.Token(), l.Token())
	}
	expectLost(t, "Renew of a broken lease", l.Renew(ctx))
	expectLost(t, "Release of a broken lease", l.Release(ctx))
	expectHeld(t, lk, "jobs/break")
	mustRelease(t, next)
	if _, err := b.Break(ctx, ""); !errors.Is(err, lease.ErrInvalid) {
		t.Errorf("Break of an empty key: %v, want ErrInvalid", err)
	}
	// Through lease.Break and an observed locker too.
	l = mustAcquire(t, lease.Observe(lk, lease.ObserverFuncs{}), "jobs/break", time.Hour)
	if broke, err := lease.Break(ctx, lease.Observe(lk, lease.ObserverFuncs{}), "jobs/break"); err != nil || !broke {
		t.Fatalf("lease.Break through Observe = %v, %v", broke, err)
	}
	expectLost(t, "Renew of a lease broken through Observe", l.Renew(ctx))
}
