package pglease_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// The guarded holder's connections are killed: its next renewal fails, fn
// is cancelled, the lease is released, and only then can another holder
// get it.
func TestGuardConnectionKilled(t *testing.T) {
	url := storagetest.URL(t)
	// One connection, renewed more often than pgxpool's idle ping (1s),
	// so the renewal meets the dead connection rather than a fresh one.
	guarded := pglease.New(storage.FromPool(newPool(t, url, func(c *pgxpool.Config) { c.MaxConns = 1 })), pglease.Options{Holder: "guarded"})
	admin := newPool(t, url, nil)
	other := pglease.New(storage.FromPool(admin), pglease.Options{Holder: "contender"})

	next, err := leasetest.Outage(t, guarded, other, "enqueuer", 1500*time.Millisecond, func() {
		if _, err := admin.Exec(t.Context(), `
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Error(err)
		}
	})
	if !errors.Is(err, lease.ErrRenewFailed) {
		t.Errorf("Guard: %v, want ErrRenewFailed", err)
	}
	t.Logf("Guard: %v", err)
	_ = next.Release(t.Context())
}

// The network to the database goes down during Guard: renewals fail, fn is
// cancelled, the release cannot reach the server either, and the lease
// stays taken until it expires by the database's clock, after fn ended.
func TestGuardDatabaseUnreachable(t *testing.T) {
	url := storagetest.URL(t)
	p, proxied := startProxy(t, url)
	guarded := pglease.New(storage.FromPool(newPool(t, proxied, nil)), pglease.Options{Holder: "guarded"})
	other := pglease.New(storage.FromPool(newPool(t, url, nil)), pglease.Options{Holder: "contender"})

	next, err := leasetest.Outage(t, guarded, other, "enqueuer", 1500*time.Millisecond, p.cut)
	if !errors.Is(err, lease.ErrRenewFailed) && !errors.Is(err, lease.ErrLost) {
		t.Errorf("Guard: %v, want ErrRenewFailed or ErrLost", err)
	}
	t.Logf("Guard: %v", err)
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
