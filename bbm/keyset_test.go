package bbm_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// countingWork increments n on the batch's rows (not idempotent: a row
// processed twice shows) and records the batches.
type countingWork struct {
	name    string
	mu      sync.Mutex
	batches []bbm.Batch
}

func (w *countingWork) Name() string { return w.name }

func (w *countingWork) Do(ctx context.Context, db storage.Querier, b bbm.Batch) error {
	w.mu.Lock()
	w.batches = append(w.batches, b)
	w.mu.Unlock()
	cond, args := b.Where(1)
	_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET n = n + 1 WHERE `+cond, args...)
	return err
}

func execSQL(t *testing.T, db storage.Querier, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		_, err := db.Exec(context.Background(), sql)
		require.NoError(t, err, sql)
	}
}

// Batches cut rows, not the key space: three rows with ids {1, 2,
// 100000000} are one job, and a table with huge gaps costs what its rows
// cost.
func TestKeysetSparseKeys(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	execSQL(t, pool, `CREATE TABLE sparse (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO sparse (id) VALUES (1), (2), (100000000)`,
		`CREATE TABLE gaps (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO gaps (id) SELECT g::bigint * 1000003 FROM generate_series(1, 2500) g`)
	work := &countingWork{name: "count"}
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(work))
	register(t, w.Admin(), "sparse", "sparse", "count", 1000)
	register(t, w.Admin(), "gaps", "gaps", "count", 1000)
	require.NoError(t, w.Run(ctx))

	require.Len(t, jobsOf(t, pool, "sparse"), 1, "3 rows are one batch however far apart")
	gaps := jobsOf(t, pool, "gaps")
	require.Len(t, gaps, 3, "2,500 rows in batches of 1,000")
	require.Equal(t, []int{1000, 1000, 500}, []int{gaps[0].Rows, gaps[1].Rows, gaps[2].Rows})
	require.Equal(t, bbm.IntKey(1000*1000003), gaps[0].End, "a batch ends at its 1,000th key")
	require.Equal(t, bbm.IntKey(1001*1000003), gaps[1].Start, "the next starts at the key after")
	for _, table := range []string{"sparse", "gaps"} {
		require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM `+table+` WHERE n <> 1`), table)
	}
	p, err := w.Admin().Status(ctx, "gaps")
	require.NoError(t, err)
	require.True(t, p.Exact)
	require.Equal(t, int64(2500), p.RowsTotal)
	require.Equal(t, 100.0, p.Percent)
}

// Keys of other types and composite keys go by the same walk: uuid, text
// (in the column's collation order, where "B" < "a" in "C"), timestamps and
// (repository, name) pairs. Every row is processed exactly once.
func TestKeysetKeyTypes(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	execSQL(t, pool,
		`CREATE TABLE by_uuid (id uuid PRIMARY KEY, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO by_uuid (id) SELECT gen_random_uuid() FROM generate_series(1, 1050)`,
		`CREATE TABLE by_text (name text COLLATE "C" PRIMARY KEY, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO by_text (name) SELECT CASE WHEN g % 2 = 0 THEN 'a' ELSE 'B' END || g FROM generate_series(1, 777) g`,
		`INSERT INTO by_text (name) VALUES ('it''s "quoted", with; commas'), (''), ('ünïcödé')`,
		`CREATE TABLE by_time (at timestamptz PRIMARY KEY, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO by_time (at) SELECT '2026-01-01'::timestamptz + g * interval '1.5 second' FROM generate_series(1, 500) g`,
		`CREATE TABLE tags (repository_id bigint NOT NULL, name text NOT NULL, n int NOT NULL DEFAULT 0,
			PRIMARY KEY (repository_id, name))`,
		`INSERT INTO tags (repository_id, name) SELECT r, 'v' || t FROM generate_series(1, 30) r, generate_series(1, 37) t`)
	work := &countingWork{name: "count"}
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(work))
	a := w.Admin()
	for _, d := range []bbm.Definition{
		{Name: "uuid", Table: "by_uuid", Column: "id", Work: "count", BatchSize: 100},
		{Name: "text", Table: "by_text", Column: "name", Work: "count", BatchSize: 100},
		{Name: "time", Table: "by_time", Column: "at", Work: "count", BatchSize: 64},
		{Name: "tags", Table: "tags", Key: []string{"repository_id", "name"}, Column: "repository_id", Work: "count", BatchSize: 100},
	} {
		m, err := a.Register(ctx, d)
		require.NoError(t, err, d.Name)
		require.Equal(t, bbm.DeliveryExactlyOnce, m.Delivery)
	}
	require.NoError(t, w.Run(ctx))
	for table, rows := range map[string]int{"by_uuid": 1050, "by_text": 780, "by_time": 500, "tags": 1110} {
		require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM `+table+` WHERE n <> 1`), "%s: rows not processed exactly once", table)
		require.Equal(t, rows, countWhere(t, pool, `SELECT count(*) FROM `+table))
	}
	tags := jobsOf(t, pool, "tags")
	require.Len(t, tags, 12) // 1,110 rows by 100
	require.Len(t, tags[0].Start, 2, "composite keys have two values")
	require.Equal(t, bbm.Key{"1", "v1"}, tags[0].Start)
	text := jobsOf(t, pool, "text")
	require.Equal(t, bbm.Key{""}, text[0].Start, "the empty string sorts first")
	m := migrationOf(t, pool, "text")
	require.Equal(t, bbm.Key{"ünïcödé"}, m.Upper, "in C collation, bytes order")
	for _, mig := range []string{"uuid", "text", "time", "tags"} {
		require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, mig).Status)
	}
}

// NullKeys with a composite partial index walks the same way.
func TestNullKeysCompositeIndex(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	execSQL(t, pool, `CREATE TABLE blobs (repo int NOT NULL, digest text NOT NULL, size_bucket text, n int NOT NULL DEFAULT 0,
			PRIMARY KEY (repo, digest))`,
		`INSERT INTO blobs (repo, digest) SELECT r, md5(d::text) FROM generate_series(1, 10) r, generate_series(1, 50) d`,
		`UPDATE blobs SET size_bucket = 'done' WHERE repo % 2 = 0`,
		`CREATE INDEX blobs_unbucketed ON blobs (repo, digest) WHERE size_bucket IS NULL`)
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(bbm.WorkFunc("bucket", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		_, err := db.Exec(ctx, `UPDATE blobs SET size_bucket = 'small', n = n + 1 WHERE `+cond, args...)
		return err
	})))
	m, err := w.Admin().Register(ctx, bbm.Definition{Name: "bucket", Table: "blobs", Column: "size_bucket", Work: "bucket",
		BatchSize: 40, Strategy: bbm.NullKeys})
	require.NoError(t, err)
	require.Equal(t, []string{"repo", "digest"}, m.KeyColumns)
	require.NoError(t, w.Run(ctx))
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM blobs WHERE size_bucket IS NULL`))
	require.Equal(t, 250, countWhere(t, pool, `SELECT count(*) FROM blobs WHERE n = 1`))
	require.Len(t, jobsOf(t, pool, "bucket"), 7) // 250 NULL rows by 40
}

// failingRange is a Work that fails every attempt on the range holding key
// bad and fills the others.
func failingRange(name string, bad int64) bbm.Work {
	fill := fillWork(name)
	return bbm.WorkFunc(name, func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		if keyInt(b.Start) <= bad && bad <= keyInt(b.End) {
			return errors.New("this range is broken")
		}
		return fill.Do(ctx, db, b)
	})
}

// FinishOthers (the default): a range that keeps failing does not stall
// the migration; every other range runs, and then the migration fails
// listing the failed range. FailFast stops at the failing range.
func TestFailurePolicies(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "others", 1000)
	itemsTable(t, pool, "fast", 1000)
	opts := fastOptions()
	opts.MaxJobAttempts = 3
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(failingRange("broken", 250)))
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "others", Table: "others", Column: "id", Work: "broken", BatchSize: 100})
	require.NoError(t, err)
	_, err = w.Admin().Register(ctx, bbm.Definition{Name: "fast", Table: "fast", Column: "id", Work: "broken", BatchSize: 100,
		OnFailure: bbm.FailFast})
	require.NoError(t, err)
	err = w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.ErrorIs(t, err, bbm.ErrMaxJobAttempts)

	others := migrationOf(t, pool, "others")
	require.Equal(t, bbm.StatusFailed, others.Status)
	require.Equal(t, bbm.FinishOthers, others.OnFailure)
	require.Contains(t, others.ErrorMessage, "1 ranges failed: job")
	require.Contains(t, others.ErrorMessage, "[201, 300] after 3 attempts: this range is broken")
	require.Equal(t, 900, countWhere(t, pool, `SELECT count(*) FROM others WHERE filled = id * 2`), "every other range ran")
	p, err := w.Admin().Status(ctx, "others")
	require.NoError(t, err)
	require.Len(t, p.FailedJobs, 1)
	require.Equal(t, bbm.IntKey(201), p.FailedJobs[0].Start)
	require.Contains(t, p.FailedJobs[0].ErrorMessage, "this range is broken")

	fast := migrationOf(t, pool, "fast")
	require.Equal(t, bbm.StatusFailed, fast.Status)
	require.Equal(t, 200, countWhere(t, pool, `SELECT count(*) FROM fast WHERE filled = id * 2`), "FailFast stopped at the broken range")
}

// FinishOthers stops early, as GitLab does, when most jobs fail: a Work
// broken everywhere is not run over the whole table.
func TestFinishOthersStopsWhenMostJobsFail(t *testing.T) {
	ctx := context.Background()
	o := fastOptions()
	o.MaxJobAttempts = 1
	o.Store = bbmtest.NewStore(bbmtest.StoreOptions{})
	o.Catalog = bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10_000})
	w := bbm.NewSyncWorker(nil, o)
	require.NoError(t, w.Register(bbm.WorkFunc("broken", func(context.Context, storage.Querier, bbm.Batch) error {
		return errors.New("broken everywhere")
	})))
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "broken", Table: "items", Column: "id", Work: "broken", BatchSize: 10})
	require.NoError(t, err)
	err = w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	p, err := w.Admin().Status(ctx, "broken")
	require.NoError(t, err)
	require.Contains(t, p.Migration.ErrorMessage, "stopped early")
	require.Less(t, p.Jobs.Total, 100, "ran %d of 1,000 ranges", p.Jobs.Total)
	require.GreaterOrEqual(t, p.Jobs.Total, bbm.FailedRatioMinJobs)
}

// Per-migration arguments reach every batch of the Work.
func TestArgsReachTheWork(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	type args struct {
		Factor int `json:"factor"`
	}
	w := bbm.NewSyncWorker(pool, fastOptions())
	var seen []string
	require.NoError(t, w.Register(bbm.WorkFunc("scale", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		var a args
		if err := b.DecodeArgs(&a); err != nil {
			return err
		}
		seen = append(seen, string(b.Args))
		cond, qargs := b.Where(2)
		_, err := db.Exec(ctx, `UPDATE items SET filled = id * $1 WHERE `+cond, append([]any{a.Factor}, qargs...)...)
		return err
	})))
	m, err := w.Admin().Register(ctx, bbm.Definition{Name: "scale", Table: "items", Column: "id", Work: "scale", BatchSize: 100,
		Args: args{Factor: 2}})
	require.NoError(t, err)
	require.JSONEq(t, `{"factor": 2}`, string(m.Args))
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	require.Len(t, seen, 3)
	require.JSONEq(t, `{"factor": 2}`, seen[0])
}
