package pglease_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// repoTable makes the table that the fenced writes below go to.
func repoTable(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `
		CREATE TABLE repo_migration (id int PRIMARY KEY, state text NOT NULL, written_by bigint NOT NULL);
		INSERT INTO repo_migration VALUES (1, 'pending', 0)`); err != nil {
		t.Fatal(err)
	}
}

// fencedWrite sets the repository's state in a transaction fenced by l.
func fencedWrite(ctx context.Context, pool *pgxpool.Pool, l lease.Lease, state string) error {
	return storage.InTx(ctx, pool, func(tx pgx.Tx) error {
		if err := pglease.Fence(ctx, tx, l.Key(), l.Token()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE repo_migration SET state = $1, written_by = $2 WHERE id = 1`, state, l.Token())
		return err
	})
}

func repoState(t *testing.T, pool *pgxpool.Pool) (state string, writtenBy int64) {
	t.Helper()
	if err := pool.QueryRow(t.Context(), `SELECT state, written_by FROM repo_migration WHERE id = 1`).Scan(&state, &writtenBy); err != nil {
		t.Fatal(err)
	}
	return state, writtenBy
}

// acquireFenced takes key on lk and begins a transaction that has passed
// the lease's fence, rolled back when the test ends unless committed.
func acquireFenced(t *testing.T, pool *pgxpool.Pool, lk *pglease.Locker, key string, ttl time.Duration) (lease.Lease, pgx.Tx) {
	t.Helper()
	ctx := t.Context()
	l, err := lk.Acquire(ctx, key, ttl)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if err := pglease.Fence(ctx, tx, key, l.Token()); err != nil {
		t.Fatal(err)
	}
	return l, tx
}

// A holder that stops renewing (a long GC pause, say) past its ttl is
// replaced; when it wakes up, its write is refused and the new holder's
// stands.
func TestPausedHolderIsFencedOff(t *testing.T) {
	ctx := t.Context()
	pool := storagetest.Pool(t)
	repoTable(t, pool)
	old := pglease.New(storage.FromPool(pool), pglease.Options{Holder: "paused"})
	fresh := pglease.New(storage.FromPool(pool), pglease.Options{Holder: "fresh"})
	const ttl = time.Second // the first write must come within it, on a loaded machine too

	a, err := old.Acquire(ctx, "repo:1", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := fencedWrite(ctx, pool, a, "pre_importing"); err != nil {
		t.Fatalf("holder's write while it holds the lease: %v", err)
	}

	// a is paused: no renewals. Another instance waits and takes over.
	b, err := lease.Wait(ctx, fresh, "repo:1", time.Minute, lease.WaitOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if b.Token() <= a.Token() {
		t.Fatalf("new token %d, want > %d", b.Token(), a.Token())
	}
	if err := fencedWrite(ctx, pool, b, "importing"); err != nil {
		t.Fatalf("new holder's write: %v", err)
	}

	// a wakes up and carries on as if it still held the lease.
	err = fencedWrite(ctx, pool, a, "import_done")
	if !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("late write of the paused holder: %v, want ErrFenced", err)
	}
	if !strings.Contains(err.Error(), "newer holder") {
		t.Errorf("error %q does not say a newer holder took over", err)
	}
	if state, by := repoState(t, pool); state != "importing" || by != b.Token() {
		t.Errorf("repository is %q by token %d, want %q by %d", state, by, "importing", b.Token())
	}
	if err := a.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("paused holder's Renew: %v, want ErrLost", err)
	}
	if err := a.Release(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("paused holder's Release: %v, want ErrLost", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A write that passed the fence is ordered before the next holder, and
// nobody waits for it: while the fenced transaction runs, an Acquire of
// the lease that expired inside it fails at once with ErrHeld (it used to
// block on the row lock for the whole transaction); once the transaction
// has ended the key is taken, and the old holder's next write is refused.
func TestFenceHoldsOffTakeoverWithoutWaiting(t *testing.T) {
	ctx := t.Context()
	pool := storagetest.Pool(t)
	repoTable(t, pool)
	lk := pglease.New(storage.FromPool(pool), pglease.Options{})
	const ttl = time.Second // acquireFenced's fence must come within it, on a loaded machine too
	a, tx := acquireFenced(t, pool, lk, "repo:1", ttl)
	time.Sleep(ttl + 100*time.Millisecond) // the lease expires inside the transaction

	// A deadline far beyond any round trip: hitting it means Acquire waited.
	quick, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for range 3 {
		if _, err := lk.Acquire(quick, "repo:1", time.Minute); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("Acquire during the fenced transaction: %v, want ErrHeld at once", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE repo_migration SET state = 'importing', written_by = $1`, a.Token()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := lk.Acquire(ctx, "repo:1", time.Minute)
	if err != nil {
		t.Fatalf("takeover after the fenced transaction: %v", err)
	}
	if b.Token() <= a.Token() {
		t.Errorf("takeover token %d, want > %d", b.Token(), a.Token())
	}
	if err := fencedWrite(ctx, pool, a, "import_done"); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("old holder's next write: %v, want ErrFenced", err)
	}
	if state, by := repoState(t, pool); state != "importing" || by != a.Token() {
		t.Errorf("repository is %q by token %d, want %q by %d", state, by, "importing", a.Token())
	}
}

func TestFenceRefuses(t *testing.T) {
	ctx := t.Context()
	pool := storagetest.Pool(t)
	lk := pglease.New(storage.FromPool(pool), pglease.Options{})

	released, err := lk.Acquire(ctx, "released", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := released.Release(ctx); err != nil {
		t.Fatal(err)
	}
	expired, err := lk.Acquire(ctx, "expired", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	live, err := lk.Acquire(ctx, "live", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		key    string
		token  int64
		target error
		want   string
	}{
		{"never leased", "nothing", 1, lease.ErrFenced, "never been leased"},
		{"released", "released", released.Token(), lease.ErrFenced, "released"},
		{"expired", "expired", expired.Token(), lease.ErrFenced, "expired"},
		{"token from the future", "live", live.Token() + 1, lease.ErrFenced, "never had token"},
		{"empty key", "", 1, lease.ErrInvalid, "empty"},
		{"key too long", strings.Repeat("k", 256), 1, lease.ErrInvalid, "256 bytes"},
		{"zero token", "live", 0, lease.ErrInvalid, "not positive"},
	}
	for _, c := range cases {
		err := storage.InTx(ctx, pool, func(tx pgx.Tx) error { return pglease.Fence(ctx, tx, c.key, c.token) })
		if !errors.Is(err, c.target) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Fence = %v, want %v saying %q", c.name, err, c.target, c.want)
		}
	}
	if err := storage.InTx(ctx, pool, func(tx pgx.Tx) error { return pglease.Fence(ctx, tx, "live", live.Token()) }); err != nil {
		t.Errorf("Fence of the live lease: %v", err)
	}
}

// Asking for a held key is a read: it locks nothing, so it neither waits
// for a fenced transaction of the holder nor leaves its mark on the row.
func TestHeldAcquireIsARead(t *testing.T) {
	ctx := t.Context()
	pool := storagetest.Pool(t)
	holder := pglease.New(storage.FromPool(pool), pglease.Options{Holder: "holder"})
	other := pglease.New(storage.FromPool(pool), pglease.Options{Holder: "other"})
	_, tx := acquireFenced(t, pool, holder, "repo:1", time.Minute)
	held := make(chan error, 1)
	go func() {
		_, err := other.Acquire(ctx, "repo:1", time.Minute)
		held <- err
	}()
	select {
	case err := <-held:
		if !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("Acquire of the held key: %v, want ErrHeld", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Acquire of a held key waited for the holder's fenced transaction")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// A row lock would have set the row's xmax to the asker's transaction.
	xmax := func() (x string) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT xmax::text FROM ferry_leases WHERE key = 'repo:1'`).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	before := xmax()
	for range 3 {
		if _, err := other.Acquire(ctx, "repo:1", time.Minute); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("Acquire of the held key: %v, want ErrHeld", err)
		}
	}
	if after := xmax(); after != before {
		t.Errorf("held Acquires changed the row's xmax from %s to %s: they locked it", before, after)
	}
}
