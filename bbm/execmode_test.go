package bbm_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

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
			ctx := context.Background()
			cfg, err := pgxpool.ParseConfig(storagetest.URL(t))
			require.NoError(t, err)
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			db := storage.FromPool(pool)

			countedTable(t, db, 1000)
			execSQL(t, db, `CREATE TABLE tags (repo uuid NOT NULL, name text NOT NULL, n int NOT NULL DEFAULT 0, PRIMARY KEY (repo, name))`,
				`INSERT INTO tags (repo, name) SELECT gen_random_uuid(), 'v' || g FROM generate_series(1, 300) g`,
				`CREATE TABLE blobs (id bigint PRIMARY KEY, bucket text)`,
				`INSERT INTO blobs (id) SELECT generate_series(1, 500)`,
				`CREATE INDEX blobs_unbucketed ON blobs (id) WHERE bucket IS NULL`)
			w := bbm.NewSyncWorker(db, fastOptions())
			work := &countingWork{name: "count"}
			require.NoError(t, w.Register(work, bbm.WorkFunc("bucket", func(ctx context.Context, q storage.Querier, b bbm.Batch) error {
				var args struct{ Bucket string }
				if err := b.DecodeArgs(&args); err != nil {
					return err
				}
				cond, qargs := b.Where(2)
				_, err := q.Exec(ctx, `UPDATE blobs SET bucket = $1 WHERE `+cond, append([]any{args.Bucket}, qargs...)...)
				return err
			})))
			a := w.Admin()
			for _, d := range []bbm.Definition{
				{Name: "counted", Table: "counted", Column: "id", Work: "count", BatchSize: 100, From: bbm.IntKey(1)},
				{Name: "tags", Table: "tags", Key: []string{"repo", "name"}, Column: "repo", Work: "count", BatchSize: 64},
				{Name: "blobs", Table: "blobs", Column: "bucket", Work: "bucket", BatchSize: 100, Strategy: bbm.NullKeys,
					Args: map[string]string{"bucket": "small"}},
			} {
				_, err := a.Register(ctx, d)
				require.NoError(t, err, d.Name)
			}
			require.NoError(t, w.Run(ctx))
			require.Zero(t, countWhere(t, db, `SELECT count(*) FROM counted WHERE n <> 1`))
			require.Zero(t, countWhere(t, db, `SELECT count(*) FROM tags WHERE n <> 1`))
			require.Zero(t, countWhere(t, db, `SELECT count(*) FROM blobs WHERE bucket IS DISTINCT FROM 'small'`))
			all, err := a.StatusAll(ctx)
			require.NoError(t, err)
			for _, p := range all {
				require.Equal(t, bbm.StatusFinished, p.Migration.Status, p.String())
			}
			require.NoError(t, a.RequireFinished(ctx, "counted", "tags", "blobs"))
		})
	}
}
