package pglease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
type queries struct{ acquire, renew, release, breakKey, inspect string }

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
		q: queries{acquire: onTable(acquireSQL, t), renew: onTable(renewSQL, t), release: onTable(releaseSQL, t), breakKey: onTable(breakSQL, t),
			inspect: onTable(inspectSQL, t)}}
}

// acquireSQL takes the key when it has no row or its lease has expired or
// was released, bumping the token; otherwise it reports the current
// holder. ON CONFLICT locks the row, and its WHERE is checked against the
// row's latest version, so two callers never both get the key.
//
// The NOT EXISTS guard skips the INSERT when the statement's snapshot shows
// a live lease, so that asking for a held key (what most contenders do)
// takes no row lock and no transaction id and writes no WAL: a read. The
// second branch reads the same snapshot; a holder that committed after it
// was taken shows up as held with no holder row.
const acquireSQL = `
WITH taken AS (
	INSERT INTO {leases} AS l (key, token, holder, acquired_at, expires_at)
	SELECT $1, 1, $2, statement_timestamp(), statement_timestamp() + $3 * interval '1 microsecond'
	WHERE NOT EXISTS (SELECT FROM {leases} WHERE key = $1 AND expires_at > statement_timestamp())
	ON CONFLICT (key) DO UPDATE
		SET token = l.token + 1, holder = excluded.holder,
		    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
		WHERE l.expires_at <= statement_timestamp()
	RETURNING token, expires_at
)
SELECT true, token, expires_at, ''::text FROM taken
UNION ALL
SELECT false, token, NULLIF(expires_at, '-infinity'), holder FROM {leases}
WHERE key = $1 AND NOT EXISTS (SELECT FROM taken)`

// Acquire implements lease.Locker.
func (lk *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	if err := lease.Check(key, ttl); err != nil {
		return nil, err
	}
	sent := time.Now()
	var (
		acquired bool
		token    int64
		expires  *time.Time // nil: released after the snapshot was taken
		holder   string
	)
	err := lk.db.QueryRow(ctx, lk.q.acquire, key, lk.holder, ttl.Microseconds()).Scan(&acquired, &token, &expires, &holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, &lease.HeldError{Key: key}
	case err != nil:
		return nil, fmt.Errorf("lease: acquiring key %q: %w", key, err)
	case !acquired && expires == nil:
		return nil, &lease.HeldError{Key: key}
	case !acquired:
		return nil, &lease.HeldError{Key: key, Holder: holder, ExpiresAt: *expires}
	}
	return lease.New((*driver)(lk), key, token, ttl, sent), nil
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
