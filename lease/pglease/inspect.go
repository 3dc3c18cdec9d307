package pglease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/lease"
)

var _ lease.Inspector = (*Locker)(nil)

// inspectSQL reads the key's row as the database's clock sees it now; a
// released lease has expires_at '-infinity' and is not held.
const inspectSQL = `
SELECT token, holder, expires_at > statement_timestamp(), NULLIF(expires_at, '-infinity')
FROM {leases} WHERE key = $1`

// Inspect implements lease.Inspector with one read of the key's row. It
// takes no lock and writes nothing.
func (lk *Locker) Inspect(ctx context.Context, key string) (lease.Holding, error) {
	if err := lease.CheckKey(key); err != nil {
		return lease.Holding{}, err
	}
	h, _, err := lk.inspect(ctx, key)
	return h, err
}

// inspect reads key's row; found is false when the key has none.
func (lk *Locker) inspect(ctx context.Context, key string) (h lease.Holding, found bool, err error) {
	h = lease.Holding{Key: key}
	var expires *time.Time
	err = lk.db.QueryRow(ctx, lk.q.inspect, key).Scan(&h.Token, &h.Holder, &h.Held, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return h, false, nil
	case err != nil:
		return lease.Holding{}, false, fmt.Errorf("lease: inspecting key %q: %w", key, err)
	}
	if !h.Held {
		h.Holder = ""
		return h, true, nil
	}
	h.ExpiresAt = *expires
	return h, true, nil
}
