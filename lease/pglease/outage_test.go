package pglease_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
)

// contender tries to take key every few milliseconds until it gets it or
// stop is closed, and reports a success while fnRunning is true: that
// would be a second holder.
func contender(t *testing.T, lk lease.Locker, key string, fnRunning *atomic.Bool, stop <-chan struct{}) <-chan lease.Lease {
	got := make(chan lease.Lease, 1)
	go func() {
		defer close(got)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			l, err := lk.Acquire(context.Background(), key, time.Minute)
			if err != nil {
				continue // held, or the contender's connection was killed too
			}
			if fnRunning.Load() {
				t.Errorf("contender got token %d while the guarded function was still running", l.Token())
			}
			got <- l
			return
		}
	}()
	return got
}

// guardedUntilCancelled runs Guard on lk with a function that calls
// disrupt and then waits for its context to be cancelled.
func guardedUntilCancelled(t *testing.T, lk lease.Locker, ttl time.Duration, running *atomic.Bool, disrupt func()) error {
	opts := lease.GuardOptions{Logger: discard}
	return lease.GuardWith(t.Context(), lk, "enqueuer", ttl, opts, func(ctx context.Context, l lease.Lease) error {
		running.Store(true)
		defer running.Store(false)
		disrupt()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			t.Error("fn's context was not cancelled")
			return nil
		}
	})
}

// The guarded holder's connections are killed: its next renewal fails, fn
// is cancelled, the lease is released, and only then can another holder
// get it.
func TestGuardConnectionKilled(t *testing.T) {
	url := pgtest.URL(t)
	// One connection, renewed more often than pgxpool's idle ping (1s),
	// so the renewal meets the dead connection rather than a fresh one.
	guarded := pglease.New(newPool(t, url, func(c *pgxpool.Config) { c.MaxConns = 1 }), pglease.Options{Holder: "guarded"})
	admin := newPool(t, url, nil)
	other := pglease.New(admin, pglease.Options{Holder: "contender"})

	var running atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	var got <-chan lease.Lease
	err := guardedUntilCancelled(t, guarded, 1500*time.Millisecond, &running, func() {
		got = contender(t, other, "enqueuer", &running, stop)
		if _, err := admin.Exec(t.Context(), `
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Error(err)
		}
	})
	if !errors.Is(err, lease.ErrRenewFailed) {
		t.Fatalf("Guard: %v, want ErrRenewFailed", err)
	}
	t.Logf("Guard: %v", err)
	select {
	case l := <-got:
		if l == nil {
			t.Fatal("contender gave up")
		}
		_ = l.Release(t.Context())
	case <-time.After(30 * time.Second):
		t.Fatal("the lease was never released")
	}
}

// The network to the database goes down during Guard: renewals fail, fn is
// cancelled, the release cannot reach the server either, and the lease
// stays taken until it expires by the database's clock, after fn ended.
func TestGuardDatabaseUnreachable(t *testing.T) {
	url := pgtest.URL(t)
	p, proxied := startProxy(t, url)
	guarded := pglease.New(newPool(t, proxied, nil), pglease.Options{Holder: "guarded"})
	other := pglease.New(newPool(t, url, nil), pglease.Options{Holder: "contender"})

	var running atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	var got <-chan lease.Lease
	const ttl = 1500 * time.Millisecond
	err := guardedUntilCancelled(t, guarded, ttl, &running, func() {
		got = contender(t, other, "enqueuer", &running, stop)
		p.cut()
	})
	if !errors.Is(err, lease.ErrRenewFailed) && !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Guard: %v, want ErrRenewFailed or ErrLost", err)
	}
	t.Logf("Guard: %v", err)
	var next lease.Lease
	select {
	case next = <-got:
		if next == nil {
			t.Fatal("contender gave up")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lease never expired")
	}
	p.restore()
	// Back online, the first holder's locker works again.
	if err := next.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, err := lease.Wait(t.Context(), guarded, "enqueuer", time.Minute, lease.WaitOptions{})
	if err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if l.Token() <= next.Token() {
		t.Errorf("token %d after %d", l.Token(), next.Token())
	}
	_ = l.Release(t.Context())
}
