package pglease_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// hookTracer runs before once, just before the first statement whose SQL
// contains match.
type hookTracer struct {
	match  string
	before func()
	done   atomic.Bool
}

func (h *hookTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, h.match) && h.done.CompareAndSwap(false, true) {
		h.before()
	}
	return ctx
}
func (h *hookTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A key that is released between Acquire's take (which found it held) and
// its read of the holder is taken on the next try, not reported held by
// nobody.
func TestAcquireTakesKeyFreedWhileReadingHolder(t *testing.T) {
	ctx := t.Context()
	url := storagetest.URL(t)
	holder := pglease.New(storage.FromPool(newPool(t, url, nil)), pglease.Options{Holder: "first"})
	held, err := holder.Acquire(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hook := &hookTracer{match: "NULLIF", before: func() {
		if err := held.Release(ctx); err != nil {
			t.Error(err)
		}
	}}
	pool := newPool(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = hook })
	l, err := pglease.New(storage.FromPool(pool), pglease.Options{Holder: "second"}).Acquire(ctx, "k", time.Minute)
	if err != nil {
		t.Fatalf("Acquire of a key freed meanwhile: %v", err)
	}
	if !hook.done.Load() {
		t.Fatal("the holder was never read: the test did not reach the race")
	}
	if l.Token() <= held.Token() {
		t.Errorf("token %d after %d", l.Token(), held.Token())
	}
}

// Two callers creating a key's first row at once: one gets it, the other
// is told who holds it.
func TestAcquireFirstRowRace(t *testing.T) {
	ctx := t.Context()
	url := storagetest.URL(t)
	rival := pglease.New(storage.FromPool(newPool(t, url, nil)), pglease.Options{Holder: "rival"})
	var rivalLease lease.Lease
	hook := &hookTracer{match: "ON CONFLICT", before: func() {
		var err error
		if rivalLease, err = rival.Acquire(ctx, "new", time.Minute); err != nil {
			t.Error(err)
		}
	}}
	pool := newPool(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = hook })
	_, err := pglease.New(storage.FromPool(pool), pglease.Options{}).Acquire(ctx, "new", time.Minute)
	var he *lease.HeldError
	if !errors.As(err, &he) || he.Holder != "rival" {
		t.Fatalf("Acquire that lost the first-row race: %v, want held by rival", err)
	}
	if rivalLease == nil || rivalLease.Token() != 1 {
		t.Fatalf("rival's lease %v", rivalLease)
	}
}

// Acquire's lock_timeout lives only as long as its statement: the
// connection it ran on (the only one of the pool) is back at the server's
// default afterwards, whichever way Acquire ended, so nothing leaks into
// the host's next statement or, behind PgBouncer, another client's.
func TestAcquireLeavesNoSessionState(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, storagetest.URL(t), func(c *pgxpool.Config) { c.MaxConns = 1 })
	lk := pglease.New(storage.FromPool(pool), pglease.Options{})
	lockTimeout := func() string {
		var v string
		if err := pool.QueryRow(ctx, "SHOW lock_timeout").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := lockTimeout()
	l, err := lk.Acquire(ctx, "k", time.Minute) // first row
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Acquire(ctx, "k", time.Minute); !errors.Is(err, lease.ErrHeld) { // held
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Acquire(ctx, "k", time.Minute); err != nil { // taken
		t.Fatal(err)
	}
	if got := lockTimeout(); got != want {
		t.Fatalf("lock_timeout after Acquire is %q, want the default %q", got, want)
	}
}

// A DeleteExpired in flight while a key's first-row INSERT takes its
// snapshot: the INSERT must not read the old token floor and then, once
// the delete commits, insert a token the removed row already had (its
// stale holder could then renew, release and fence with the new
// holder's token). Found in review; this test gave both holders token 1
// before the fix.
func TestFirstRowDuringDeleteExpiredKeepsTokensUnique(t *testing.T) {
	ctx := t.Context()
	url := storagetest.URL(t)
	plain := newPool(t, url, nil)
	stale := pglease.New(storage.FromPool(plain), pglease.Options{Holder: "stale"})
	var staleLease lease.Lease
	hook := &hookTracer{match: "ON CONFLICT (key) DO NOTHING", before: func() {
		// Between Acquire's read of the holder (no row) and its first
		// insert: another holder creates the key's row, its lease expires,
		// and DeleteExpired removes the row, committing only while the
		// insert runs.
		var err error
		if staleLease, err = stale.Acquire(ctx, "k", 50*time.Millisecond); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(100 * time.Millisecond)
		tx, err := plain.Begin(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := tx.Exec(ctx, pglease.DeleteExpiredSQLForTest, 0, 1000); err != nil {
			t.Error(err)
			return
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
				t.Error(err)
			}
		}()
	}}
	pool := newPool(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = hook })
	l, err := pglease.New(storage.FromPool(pool), pglease.Options{}).Acquire(ctx, "k", time.Minute)
	if staleLease == nil {
		t.Fatal("the race was not set up")
	}
	if err == nil && l.Token() <= staleLease.Token() {
		t.Fatalf("new lease token %d is not past the removed row's %d", l.Token(), staleLease.Token())
	}
	if err != nil && !errors.Is(err, lease.ErrHeld) {
		t.Fatal(err)
	}
	if err := staleLease.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("the removed lease's holder renewed: %v, want ErrLost", err)
	}
}
