package pglease_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// DeleteExpired removes the rows of released and expired leases, keeps
// live ones and rows a fenced transaction holds, and tokens keep growing:
// a key acquired again after its row was removed, or a key never seen,
// gets a token past every removed one. The removed holder's lease is lost.
func TestDeleteExpired(t *testing.T) {
	ctx := t.Context()
	pool := storagetest.Pool(t)
	lk := pglease.New(storage.FromPool(pool), pglease.Options{})
	rows := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM ferry_leases WHERE key <> ''`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	acquire := func(key string, ttl time.Duration) lease.Lease {
		t.Helper()
		l, err := lk.Acquire(ctx, key, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	var highest int64
	for range 3 { // tokens climb on the released key
		l := acquire("released", time.Minute)
		highest = max(highest, l.Token())
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	expired := acquire("expired", time.Millisecond)
	fenced := acquire("fenced", time.Millisecond)
	live := acquire("live", time.Minute)
	time.Sleep(20 * time.Millisecond)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back on failure
	// An expired lease's row held by a transaction (FOR SHARE, as Fence
	// locks it) is skipped, not waited for.
	if _, err := tx.Exec(ctx, `SELECT FROM ferry_leases WHERE key = 'fenced' FOR SHARE`); err != nil {
		t.Fatal(err)
	}

	if n, err := lk.DeleteExpired(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("DeleteExpired(1h) = %d, %v; want only the released row", n, err)
	}
	n, err := lk.DeleteExpired(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired(0) = %d, %v; want the expired row (the fenced one is locked)", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rows(); got != 2 {
		t.Fatalf("%d rows left, want 2 (live, fenced)", got)
	}
	if err := expired.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew of a removed lease: %v, want ErrLost", err)
	}
	if err := storage.InTx(ctx, pool, func(tx pgx.Tx) error { return pglease.Fence(ctx, tx, "expired", expired.Token()) }); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("Fence of a removed lease: %v, want ErrFenced", err)
	}
	highest = max(highest, expired.Token(), fenced.Token(), live.Token())
	for _, key := range []string{"released", "expired", "never-seen"} {
		if l := acquire(key, time.Minute); l.Token() <= highest {
			t.Errorf("%s after the cleanup: token %d, want > %d", key, l.Token(), highest)
		}
	}
	if _, err := lk.Acquire(ctx, "live", time.Minute); !errors.Is(err, lease.ErrHeld) {
		t.Errorf("the live lease: %v, want still held", err)
	}
}
