package bbm_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// Behind a transaction-pooling PgBouncer a host turns pgx's server-side
// prepared statements off: with QueryExecModeExec parameter types come from
// the Go values alone, with the simple protocol values are quoted into the
// SQL. bbm runs the same in both (keys are cast explicitly, never inferred
// from a described statement): registration, keyset batching over integer,
// uuid and composite keys, NullKeys, arguments, failures and status.
func TestWithoutPreparedStatements(t *testing.T) {
	for name, mode := range map[string]pgx.QueryExecMode{"exec": pgx.QueryExecModeExec,
		"simple_protocol": pgx.QueryExecModeSimpleProtocol} {
		t.Run(name, func(t *testing.T) {
			cfg, err := pgxpool.ParseConfig(storagetest.URL(t))
			require.NoError(t, err)
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			runEveryKeyKind(t, 1, storage.FromPool(pool))
		})
	}
}

// The same through a real PgBouncer in transaction-pooling mode, on a
// host's *sql.DB (storagetest.KindBouncer), with three workers on handles
// of their own and Parallelism 2: each transaction may run on another
// server connection, the budget's advisory lock is transaction-scoped, and
// every row is still applied exactly once.
func TestThroughPgBouncer(t *testing.T) {
	url := storagetest.URL(t)
	var dbs []storage.Handle
	for range 3 {
		dbs = append(dbs, storagetest.OpenHandle(t, storagetest.KindBouncer, url))
	}
	runEveryKeyKind(t, 2, dbs...)
}

// runEveryKeyKind registers migrations over integer, uuid and composite
// keys, NullKeys and arguments, runs a SyncWorker with parallelism on each
// of dbs (handles on one database) at once until all are finished, and
// checks that every row was applied exactly once.
func runEveryKeyKind(t *testing.T, parallelism int, dbs ...storage.Handle) {
	ctx := context.Background()
	db := dbs[0]
	countedTable(t, db, 1000)
	execSQL(t, db, `CREATE TABLE tags (repo uuid NOT NULL, name text NOT NULL, n int NOT NULL DEFAULT 0, PRIMARY KEY (repo, name))`,
		`INSERT INTO tags (repo, name) SELECT gen_random_uuid(), 'v' || g FROM generate_series(1, 300) g`,
		`CREATE TABLE blobs (id bigint PRIMARY KEY, bucket text)`,
		`INSERT INTO blobs (id) SELECT generate_series(1, 500)`,
		`CREATE INDEX blobs_unbucketed ON blobs (id) WHERE bucket IS NULL`)
	work := &countingWork{name: "count"}
	bucket := bbm.WorkFunc("bucket", func(ctx context.Context, q storage.Querier, b bbm.Batch) error {
		var args struct{ Bucket string }
		if err := b.DecodeArgs(&args); err != nil {
			return err
		}
		cond, qargs := b.Where(2)
		_, err := q.Exec(ctx, `UPDATE blobs SET bucket = $1 WHERE `+cond, append([]any{args.Bucket}, qargs...)...)
		return err
	})
	opts := fastOptions()
	opts.Parallelism = parallelism
	var workers []*bbm.SyncWorker
	for _, h := range dbs {
		w := bbm.NewSyncWorker(h, opts)
		require.NoError(t, w.Register(work, bucket))
		workers = append(workers, w)
	}
	a := workers[0].Admin()
	for _, d := range []bbm.Definition{
		{Name: "counted", Table: "counted", Column: "id", Work: "count", BatchSize: 100, From: bbm.IntKey(1)},
		{Name: "tags", Table: "tags", Key: []string{"repo", "name"}, Column: "repo", Work: "count", BatchSize: 64},
		{Name: "blobs", Table: "blobs", Column: "bucket", Work: "bucket", BatchSize: 100, Strategy: bbm.NullKeys,
			Args: map[string]string{"bucket": "small"}},
	} {
		_, err := a.Register(ctx, d)
		require.NoError(t, err, d.Name)
	}
	var g errgroup.Group
	for _, w := range workers {
		g.Go(func() error { return w.Run(ctx) })
	}
	require.NoError(t, g.Wait())
	require.Zero(t, countWhere(t, db, `SELECT count(*) FROM counted WHERE n <> 1`))
	require.Zero(t, countWhere(t, db, `SELECT count(*) FROM tags WHERE n <> 1`))
	require.Zero(t, countWhere(t, db, `SELECT count(*) FROM blobs WHERE bucket IS DISTINCT FROM 'small'`))
	all, err := a.StatusAll(ctx)
	require.NoError(t, err)
	for _, p := range all {
		require.Equal(t, bbm.StatusFinished, p.Migration.Status, p.String())
	}
	require.NoError(t, a.RequireFinished(ctx, "counted", "tags", "blobs"))
}
