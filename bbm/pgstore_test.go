package bbm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestPostgresStoreConformance(t *testing.T) {
	bbmtest.TestStore(t, func(t *testing.T) bbm.Store {
		return bbm.NewPostgresStore(pgSetup(t), bbm.PostgresStoreOptions{})
	})
}

// The store passes the same suite through PgBouncer in transaction-pooling
// mode, on a host's *sql.DB (storagetest.KindBouncer).
func TestPostgresStoreThroughPgBouncer(t *testing.T) {
	bbmtest.TestStore(t, func(t *testing.T) bbm.Store {
		return bbm.NewPostgresStore(storagetest.Handle(t, storagetest.KindBouncer), bbm.PostgresStoreOptions{})
	})
}

// Migrations and jobs stored before keyset batching (0005) come through the
// schema migration as single bigint keys, with the order they ran with.
func TestSchemaMigrationKeepsIntegerRanges(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, storagetest.EmptyURL(t))
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{UpTo: 4, Logger: testLogger()}))
	execSQL(t, pool, `INSERT INTO ferry_bbm_migrations (name, table_schema, table_name, column_name, key_column,
			min_key, max_key, batch_size, status, work_name) VALUES ('old', 'public', 'items', 'id', 'id', 1, 300, 100, 'running', 'fill')`,
		`INSERT INTO ferry_bbm_jobs (migration_id, min_key, max_key, batch_size, status, attempts)
			SELECT id, 1, 100, 100, 'finished', 1 FROM ferry_bbm_migrations`)
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{Logger: testLogger()}))

	m := migrationOf(t, storage.FromPool(pool), "old")
	require.Equal(t, []string{"id"}, m.KeyColumns)
	require.Equal(t, bbm.IntKey(1), m.Lower)
	require.Equal(t, bbm.IntKey(300), m.Upper)
	require.Equal(t, bbm.Keyset, m.Strategy)
	require.Equal(t, bbm.FailFast, m.OnFailure)
	require.Equal(t, bbm.DeliveryExactlyOnce, m.Delivery)
	jobs := jobsOf(t, storage.FromPool(pool), "old")
	require.Len(t, jobs, 1)
	require.Equal(t, bbm.IntKey(100), jobs[0].End)
	require.Equal(t, 100, jobs[0].Rows)

	// A worker carries on from there.
	itemsTable(t, pool, "items", 300)
	w := bbm.NewSyncWorker(storage.FromPool(pool), fastOptions())
	require.NoError(t, w.Register(fillWork("fill")))
	require.NoError(t, w.Run(ctx))
	require.Equal(t, 200, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled = id * 2 AND id > 100`))
	require.Equal(t, bbm.StatusFinished, migrationOf(t, storage.FromPool(pool), "old").Status)
}
