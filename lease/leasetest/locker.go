package leasetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// Options tunes NewLocker. The zero value is ready to use.
type Options struct {
	// Clock decides when leases expire, and is the clock of the leases'
	// ExpiresAt. Default: the system clock. With a FakeClock, leases
	// expire only when the test advances it.
	Clock Clock
	// Holder names this locker in the HeldError others get. Default
	// "leasetest".
	Holder string
}

// Locker is an in-memory lease.Locker for hosts' unit tests. It behaves
// like the real backends (it passes Run) but lives in one process.
type Locker struct {
	clock  Clock
	holder string

	mu         sync.Mutex
	keys       map[string]*entry
	renewErr   error
	acquireErr error
}

// entry is the state of one key. The token stays when the lease ends, so
// that the next acquisition's token is larger.
type entry struct {
	token   int64
	holder  string
	expires time.Time // zero once released
}

var _ lease.Locker = (*Locker)(nil)

// NewLocker returns an empty in-memory Locker.
func NewLocker(opts Options) *Locker {
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Holder == "" {
		opts.Holder = "leasetest"
	}
	return &Locker{clock: opts.Clock, holder: opts.Holder, keys: make(map[string]*entry)}
}

// Acquire implements lease.Locker.
func (m *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	if err := lease.Check(key, ttl); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lease: acquiring key %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acquireErr != nil {
		return nil, fmt.Errorf("lease: acquiring key %q: %w", key, m.acquireErr)
	}
	now := m.clock.Now()
	e := m.keys[key]
	if e == nil {
		e = &entry{}
		m.keys[key] = e
	}
	if now.Before(e.expires) {
		return nil, &lease.HeldError{Key: key, Holder: e.holder, ExpiresAt: e.expires}
	}
	e.token++
	e.holder = m.holder
	e.expires = now.Add(ttl)
	return lease.New((*driver)(m), key, e.token, ttl, now), nil
}

// FailRenewals makes every later Renew fail with err (a stand-in for a
// network failure) without touching the leases; nil restores normal
// renewals.
func (m *Locker) FailRenewals(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.renewErr = err
}

// FailAcquires makes every later Acquire fail with err; nil restores it.
func (m *Locker) FailAcquires(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acquireErr = err
}

// Holder returns the token of the lease currently held on key, and whether
// there is one.
func (m *Locker) Holder(key string) (token int64, held bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.keys[key]
	if e == nil || !m.clock.Now().Before(e.expires) {
		return 0, false
	}
	return e.token, true
}

var _ lease.Breaker = (*Locker)(nil)

// Break implements lease.Breaker.
func (m *Locker) Break(ctx context.Context, key string) (bool, error) {
	if err := lease.CheckKey(key); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("lease: breaking key %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.keys[key]
	if e == nil || !m.clock.Now().Before(e.expires) {
		return false, nil
	}
	e.expires, e.holder = time.Time{}, ""
	return true, nil
}

// current reports whether token is the live lease on key; m.mu is held.
func (m *Locker) current(key string, token int64) (*entry, bool) {
	e := m.keys[key]
	if e == nil || e.token != token || !m.clock.Now().Before(e.expires) {
		return nil, false
	}
	return e, true
}

// driver is the Locker seen as the lease.Driver of its leases; it is also
// their lease.Clock, so that ExpiresAt reads the injected clock.
type driver Locker

// Now implements lease.Clock.
func (d *driver) Now() time.Time { return d.clock.Now() }

// Renew implements lease.Driver.
func (d *driver) Renew(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.renewErr != nil {
		return false, d.renewErr
	}
	e, ok := (*Locker)(d).current(key, token)
	if ok {
		e.expires = d.clock.Now().Add(ttl)
	}
	return ok, nil
}

// Release implements lease.Driver.
func (d *driver) Release(ctx context.Context, key string, token int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := (*Locker)(d).current(key, token)
	if ok {
		e.expires = time.Time{}
		e.holder = ""
	}
	return ok, nil
}
