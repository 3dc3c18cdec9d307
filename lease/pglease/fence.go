package pglease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
)

// fenceSQL locks the key's row FOR SHARE: a takeover (Acquire's UPDATE,
// which gives up after its 1 ms lock_timeout) is refused while the
// caller's transaction runs, while fenced
// writes of the same holder do not wait for each other.
const fenceSQL = `
SELECT token, expires_at = '-infinity', expires_at > statement_timestamp(), NULLIF(expires_at, '-infinity')
FROM {leases} WHERE key = $1 FOR SHARE`

// Fence fails with an error wrapping lease.ErrFenced unless token is the
// current, unexpired lease on key, judged by the database clock. It locks
// the key's lease row until tx ends, so no newer holder can take the key
// before the writes that tx makes after Fence are committed or rolled
// back: call Fence first in the transaction, then write.
//
// Other holders' Acquire of the key fails with lease.ErrHeld while tx runs,
// even once the lease has expired (it never waits for tx); the holder's own
// Renew and Release, and Break, wait for tx. Keep fenced transactions well
// shorter than the ttl. Under REPEATABLE READ or SERIALIZABLE, a takeover that
// committed after tx's snapshot fails Fence with a serialization error
// (40001), which storage.InTx retries.
//
// Fence reads the leases table found through the search_path; a Locker
// whose Handle puts Ferry's tables in a schema (storage.WithSchema) fences
// with FenceWith and FenceOptions.Schema.
func Fence(ctx context.Context, tx pgx.Tx, key string, token int64) error {
	return fence(ctx, tx, "", key, token)
}

// FenceOptions tunes FenceWith. The zero value gives Fence.
type FenceOptions struct {
	// Observer is told the outcome of the check (lease.FenceEvent), for
	// metrics and tracing. Default: none.
	Observer lease.Observer
	// Schema is the schema of Ferry's tables, as given to the Locker's
	// Handle (storage.WithSchema). Default: the search_path's.
	Schema string
}

// FenceWith is Fence that reports the check to opts.Observer.
func FenceWith(ctx context.Context, tx pgx.Tx, key string, token int64, opts FenceOptions) error {
	err := fence(ctx, tx, opts.Schema, key, token)
	if opts.Observer != nil {
		opts.Observer.FenceChecked(ctx, lease.FenceEvent{Key: key, Token: token, Err: err})
	}
	return err
}

func fence(ctx context.Context, tx pgx.Tx, schema, key string, token int64) error {
	if err := lease.CheckKey(key); err != nil {
		return err
	}
	if token <= 0 {
		return fmt.Errorf("%w: fencing key %q: token %d is not positive", lease.ErrInvalid, key, token)
	}
	var (
		current        int64
		released, live bool
		expires        *time.Time
	)
	err := tx.QueryRow(ctx, onTable(fenceSQL, storage.TableIn(schema, LeasesTable)), key).Scan(&current, &released, &live, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: key %q has never been leased (token %d)", lease.ErrFenced, key, token)
	case err != nil:
		return fmt.Errorf("lease: fencing key %q (token %d): %w", key, token, err)
	case current > token:
		return fmt.Errorf("%w: key %q has a newer holder (token %d > %d)", lease.ErrFenced, key, current, token)
	case current < token:
		return fmt.Errorf("%w: key %q has never had token %d (current %d)", lease.ErrFenced, key, token, current)
	case released:
		return fmt.Errorf("%w: the lease on key %q (token %d) was released", lease.ErrFenced, key, token)
	case !live:
		return fmt.Errorf("%w: the lease on key %q (token %d) expired at %s", lease.ErrFenced, key, token, expires.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
