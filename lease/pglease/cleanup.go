package pglease

import (
	"context"
	"fmt"
	"time"
)

// deleteExpiredBatch bounds the rows one DeleteExpired statement removes,
// so that it never holds many row locks or runs for long.
const deleteExpiredBatch = 1000

// deleteExpiredSQL removes up to $2 rows of leases that were released or
// expired more than $1 microseconds ago, skipping rows locked right now (a
// fenced transaction, an Acquire taking the key), and raises the row of
// key "" to the highest token removed, in the same transaction: a key's
// next first row starts past it (firstSQL), so tokens never go back.
const deleteExpiredSQL = `
WITH gone AS (
	DELETE FROM {leases}
	WHERE key IN (
		SELECT key FROM {leases}
		WHERE key <> '' AND expires_at < statement_timestamp() - $1 * interval '1 microsecond'
		LIMIT $2 FOR UPDATE SKIP LOCKED)
	AND expires_at < statement_timestamp() - $1 * interval '1 microsecond'
	RETURNING token
), floor AS (
	INSERT INTO {leases} AS l (key, token, holder, acquired_at, expires_at)
	SELECT '', max(token), '', statement_timestamp(), '-infinity' FROM gone HAVING count(*) > 0
	ON CONFLICT (key) DO UPDATE SET token = GREATEST(l.token, excluded.token)
)
SELECT count(*) FROM gone`

// DeleteExpired removes the rows of keys whose lease was released, or
// expired more than olderThan ago (0: any expired lease), and returns how
// many it removed. Without it the leases table keeps one row per key ever
// leased. Tokens stay monotonic: a key acquired after its row was removed
// gets a token larger than any it had. A holder whose row was removed
// finds its lease lost (Renew, Release) and its fenced writes refused.
//
// It works in batches of 1,000 rows, skips rows locked at the moment (a
// fenced transaction) and never waits for them. Hosts call it now and then,
// e.g. hourly from a maintenance job.
func (lk *Locker) DeleteExpired(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		olderThan = 0
	}
	var total int64
	for {
		var n int64
		if err := lk.db.QueryRow(ctx, lk.q.deleteExpired, olderThan.Microseconds(), deleteExpiredBatch).Scan(&n); err != nil {
			return total, fmt.Errorf("lease: deleting expired leases: %w", err)
		}
		total += n
		if n < deleteExpiredBatch {
			return total, nil
		}
	}
}
