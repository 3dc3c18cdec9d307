package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/storage"
)

// schemaLockKey serializes the host's own schema setup between processes
// that start at once: "rhschema" in ASCII.
const schemaLockKey int64 = 0x7268736368656d61

// hostSchema is the host's own table, next to Ferry's (which
// storage.Migrate applies; the import server's state is there). A real
// registry has its own migrations; a CREATE TABLE IF NOT EXISTS keeps the
// example self-contained.
const hostSchema = `
CREATE TABLE IF NOT EXISTS registryhost_blobs (
    id          bigint PRIMARY KEY,
    digest      text   NOT NULL,
    size        bigint NOT NULL,
    size_bucket text,                    -- filled by the backfill
    touched     int    NOT NULL DEFAULT 0 -- how often the backfill changed the row
)`

// ensureSchema creates the host's tables and, the first time, fills
// registryhost_blobs with rows whose size_bucket the backfill computes.
func ensureSchema(ctx context.Context, db storage.Beginner, rows int) (seeded bool, err error) {
	err = storage.InTx(ctx, db, func(tx pgx.Tx) error {
		seeded = false
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, hostSchema); err != nil {
			return err
		}
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM registryhost_blobs)`).Scan(&empty); err != nil {
			return err
		}
		if !empty {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO registryhost_blobs (id, digest, size)
			SELECT g, 'sha256:' || encode(sha256(convert_to(g::text, 'UTF8')), 'hex'),
			       (hashtext(g::text)::bigint & 2147483647) % 400000000
			FROM generate_series(1, $1::bigint) g`, rows)
		if err != nil {
			return err
		}
		// Statistics now, so that the planner's row estimate (bbm shows
		// it as the total until every range is cut) is the real count.
		_, err = tx.Exec(ctx, `ANALYZE registryhost_blobs`)
		seeded = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("creating the host's tables: %w", err)
	}
	return seeded, nil
}
