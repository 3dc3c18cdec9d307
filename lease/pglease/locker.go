package pglease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
)

// Options tunes New. The zero value is ready to use.
type Options struct {
	// Holder names this process in the HeldError that other holders get.
	// Default "<hostname>/<pid>".
	Holder string
}

// Locker is a lease.Locker on Postgres. It is safe for concurrent use.
type Locker struct {
	db     storage.Handle
	holder string
	q      queries
}

// LeasesTable is the table of leases (storage/migrations/0002_lease.sql), in
// the schema of db's Ferry tables (storage.WithSchema).
const LeasesTable = "ferry_leases"

// queries are the Locker's statements on its leases table.
type queries struct{ take, first, renew, release, breakKey, inspect, deleteExpired string }

// onTable puts the quoted, qualified leases table into sql's {leases}.
func onTable(sql, table string) string { return strings.ReplaceAll(sql, "{leases}", table) }

var _ lease.Locker = (*Locker)(nil)

// New returns a Locker on db (storage.FromPool, storage.FromSQL or a
// *storage.DB, whose primary is used), a database that has Ferry's schema.
func New(db storage.Handle, opts Options) *Locker {
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	t := storage.Table(db, LeasesTable)
	return &Locker{db: db, holder: opts.Holder,
		q: queries{take: onTable(takeSQL, t), first: onTable(firstSQL, t), renew: onTable(renewSQL, t), release: onTable(releaseSQL, t), breakKey: onTable(breakSQL, t),
			inspect: onTable(inspectSQL, t), deleteExpired: onTable(deleteExpiredSQL, t)}}
}

// takeSQL takes a key whose row exists and whose lease expired or was
// released, bumping the token, in one round trip: what almost every
// successful Acquire runs. It returns no row when the key is held or has
// no row yet.
//
// "Never waits": a holder's fenced transaction (Fence, FOR SHARE) keeps a
// lock on the row, so an UPDATE of an expired lease would wait for that
// transaction. The statement first sets lock_timeout to 1 ms for its own
// implicit transaction (set_config's is_local; nothing outlives the
// statement, so transaction pooling is safe): the uncorrelated subquery is
// an InitPlan the executor evaluates before it reads the row. A lock held
// longer fails with lock_not_available (55P03), reported as ErrHeld. A
// concurrent Acquire of the same key commits within that millisecond, and
// the UPDATE then re-checks its WHERE against the row's latest version, so
// two callers never both get the key. Asking for a held key locks nothing,
// takes no transaction id and writes no WAL.
//
// It is deliberately one plain UPDATE: folding the held report and the
// first insert into the statement (as an earlier version did) made every
// Acquire pay for an INSERT ... ON CONFLICT and a UNION, and locking the
// row FOR NO KEY UPDATE NOWAIT in a CTE first cost another 5-7%; see
// BENCHMARKS.md.
const takeSQL = `
UPDATE {leases} SET token = token + 1, holder = $2, acquired_at = statement_timestamp(),
	expires_at = statement_timestamp() + $3 * interval '1 microsecond'
WHERE key = $1 AND expires_at <= statement_timestamp()
	AND (SELECT set_config('lock_timeout', '1ms', true)) IS NOT NULL
RETURNING token`

// firstSQL creates a key's first row, holding it. The first token starts
// past the tokens of every row DeleteExpired removed (the row of key "",
// which no lease can have, keeps their highest), so tokens keep growing
// across a cleanup. A row inserted by someone else meanwhile returns no
// row: held.
//
// NOT EXISTS is not redundant with ON CONFLICT: DeleteExpired removes a
// key's row and raises the floor in one transaction, so a snapshot sees
// either both old (the row: nothing inserted here) or both new (the
// raised floor). Without it, a snapshot taken before that transaction
// committed read the old floor, the conflict check waited for the delete
// and then let the insert through with a token the removed row had, and
// that row's stale holder could renew and fence with it.
const firstSQL = `
INSERT INTO {leases} (key, token, holder, acquired_at, expires_at)
SELECT $1, COALESCE((SELECT token FROM {leases} WHERE key = ''), 0) + 1, $2,
	statement_timestamp(), statement_timestamp() + $3 * interval '1 microsecond'
WHERE NOT EXISTS (SELECT FROM {leases} WHERE key = $1)
ON CONFLICT (key) DO NOTHING
RETURNING token`

// lockNotAvailable is the SQLSTATE of a lock that lock_timeout gave up on.
const lockNotAvailable = "55P03"

// takeAttempts bounds how often Acquire tries again when a key it found
// held was freed before it could read the holder.
const takeAttempts = 3

// Acquire implements lease.Locker. A free key costs one statement; a held
// key costs two, the second reading who holds it for the HeldError; a
// key's first lease costs three (the take finds no row, the holder read
// finds none either, then the row is inserted).
func (lk *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	if err := lease.Check(key, ttl); err != nil {
		return nil, err
	}
	for range takeAttempts {
		sent := time.Now()
		token, err := lk.write(ctx, lk.q.take, key, ttl)
		if err == nil {
			return lease.New((*driver)(lk), key, token, ttl, sent), nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, lk.acquireError(key, err)
		}
		h, found, err := lk.inspect(ctx, key)
		switch {
		case err != nil:
			return nil, err
		case h.Held:
			return nil, &lease.HeldError{Key: key, Holder: h.Holder, ExpiresAt: h.ExpiresAt}
		case found:
			continue // freed since takeSQL looked: take it now
		}
		sent = time.Now()
		token, err = lk.write(ctx, lk.q.first, key, ttl)
		if err == nil {
			return lease.New((*driver)(lk), key, token, ttl, sent), nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, lk.acquireError(key, err)
		}
		// Another caller created the row meanwhile; look again.
	}
	return nil, &lease.HeldError{Key: key}
}

// write runs takeSQL or firstSQL for key.
func (lk *Locker) write(ctx context.Context, sql, key string, ttl time.Duration) (token int64, err error) {
	err = lk.db.QueryRow(ctx, sql, key, lk.holder, ttl.Microseconds()).Scan(&token)
	return token, err
}

// acquireError reports a failed take or first insert: a lock held past
// lock_timeout is ErrHeld, anything else says which key it was.
func (lk *Locker) acquireError(key string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == lockNotAvailable {
		return &lease.HeldError{Key: key}
	}
	return fmt.Errorf("lease: acquiring key %q: %w", key, err)
}

// driver is the Locker seen as the lease.Driver of the leases it hands
// out; a type of its own keeps Renew and Release off Locker's API.
type driver Locker

const renewSQL = `
UPDATE {leases} SET expires_at = statement_timestamp() + $3 * interval '1 microsecond'
WHERE key = $1 AND token = $2 AND expires_at > statement_timestamp()`

// Renew implements lease.Driver.
func (d *driver) Renew(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	tag, err := d.db.Exec(ctx, d.q.renew, key, token, ttl.Microseconds())
	return tag.RowsAffected() == 1, err
}

// releaseSQL ends the lease if it is still current. It also matches this
// very lease when it was released before (a retried Release whose first
// answer was lost), rewriting the same values, so that the retry reports
// success; a lease that expired or was taken over matches nothing.
const releaseSQL = `
UPDATE {leases} SET expires_at = '-infinity', holder = ''
WHERE key = $1 AND token = $2 AND (expires_at > statement_timestamp() OR expires_at = '-infinity')`

// Release implements lease.Driver.
func (d *driver) Release(ctx context.Context, key string, token int64) (bool, error) {
	tag, err := d.db.Exec(ctx, d.q.release, key, token)
	return tag.RowsAffected() == 1, err
}

var _ lease.Breaker = (*Locker)(nil)

// breakSQL ends whatever lease is current on the key, as a release by its
// holder would; the token stays, so the next acquisition's is larger.
const breakSQL = `
UPDATE {leases} SET expires_at = '-infinity', holder = ''
WHERE key = $1 AND expires_at > statement_timestamp()`

// Break implements lease.Breaker: an administrator's way to free a key
// whose holder is stuck. The holder's next renewal fails with
// lease.ErrLost and its fenced writes are refused from now on.
func (lk *Locker) Break(ctx context.Context, key string) (bool, error) {
	if err := lease.CheckKey(key); err != nil {
		return false, err
	}
	tag, err := lk.db.Exec(ctx, lk.q.breakKey, key)
	if err != nil {
		return false, fmt.Errorf("lease: breaking key %q: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}
