package lease

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Driver is the store side of a lease, implemented by each backend: the
// operations on one acquisition that only the store can answer. Everything
// else a Lease does (remembering the key, token and expiry, refusing to
// renew a released lease, idempotent Release, the errors) is done once, by
// New, for every backend.
//
// A Driver may serve many leases, told apart by key and token (pglease
// passes its Locker), or be made for one acquisition and hold whatever else
// the store needs to recognise it (redislease keeps the random value its
// scripts compare). Its methods may be called concurrently.
type Driver interface {
	// Renew extends the lease on key with token to ttl from now, by the
	// store's clock, if it is still the current, unexpired lease. It
	// reports false when it is not: it expired, was released, or another
	// holder has the key. It returns an error only when the store could
	// not be asked or did not answer; the lease is then left as it was.
	Renew(ctx context.Context, key string, token int64, ttl time.Duration) (ok bool, err error)

	// Release ends the lease on key with token so that the key is free at
	// once. It reports true when the lease was current and is now ended;
	// false when it expired or another holder has the key, in which case
	// it must change nothing. It returns an error only when the store
	// could not be asked or did not answer. New calls it until it has
	// reported true once, so a store whose answers can be lost should also
	// report true for a lease that it has already released (the retry of
	// a Release whose first answer was lost), as pglease does.
	Release(ctx context.Context, key string, token int64) (ok bool, err error)
}

// Clock tells the time. A Driver that is also a Clock times its leases'
// renewals with it (leasetest's Locker does, for its fake clock); other
// leases use the system clock.
type Clock interface {
	Now() time.Time
}

// New returns the Lease for an acquisition that d's store has just
// granted: key with token, for ttl, requested at sent. Backends call it at
// the end of a successful Acquire, with sent read just before the request
// went out, so that ExpiresAt (sent + ttl) is never later than the store's
// own expiry.
func New(d Driver, key string, token int64, ttl time.Duration, sent time.Time) Lease {
	now := time.Now
	if c, ok := d.(Clock); ok {
		now = c.Now
	}
	return &driverLease{d: d, now: now, key: key, token: token, ttl: ttl, expiresAt: sent.Add(ttl)}
}

// driverLease is the Lease of every backend, over its Driver.
type driverLease struct {
	d     Driver
	now   func() time.Time
	key   string
	token int64
	ttl   time.Duration

	// mu guards expiresAt and released, and is held for the whole of a
	// Release so that concurrent Releases ask the store once.
	mu        sync.Mutex
	expiresAt time.Time
	released  bool
}

// Key, Token, ExpiresAt, Renew and Release implement Lease.

func (l *driverLease) Key() string  { return l.key }
func (l *driverLease) Token() int64 { return l.token }

func (l *driverLease) ExpiresAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiresAt
}

func (l *driverLease) Renew(ctx context.Context) error {
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return l.errorf("renewing", "%w: it was released", ErrLost)
	}
	sent := l.now()
	ok, err := l.d.Renew(ctx, l.key, l.token, l.ttl)
	if err != nil {
		return l.errorf("renewing", "%w", err)
	}
	if !ok {
		return l.errorf("renewing", "%w: it expired or another holder took it", ErrLost)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A slow renewal must not move the expiry back past a later one's.
	if exp := sent.Add(l.ttl); exp.After(l.expiresAt) {
		l.expiresAt = exp
	}
	return nil
}

func (l *driverLease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	ok, err := l.d.Release(ctx, l.key, l.token)
	if err != nil {
		return l.errorf("releasing", "%w", err)
	}
	if !ok {
		return l.errorf("releasing", "%w: it expired or another holder took it", ErrLost)
	}
	l.released = true
	return nil
}

// errorf says which lease an operation failed on, then why.
func (l *driverLease) errorf(doing, format string, args ...any) error {
	return fmt.Errorf("lease: %s key %q (token %d): %w", doing, l.key, l.token, fmt.Errorf(format, args...))
}
