package bbm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
)

func TestRegisterRejectsBadInputAndLosesNothing(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 100)
	_, err := pool.Exec(ctx, `CREATE TABLE x (id int); CREATE TABLE users (id int);
		CREATE TABLE docs (id int PRIMARY KEY, doc json NOT NULL)`)
	require.NoError(t, err)
	w := fillWorker(t, pool, fastOptions())
	admin := w.Admin()
	ok := bbm.Definition{Name: "m", Table: "items", Column: "id", Work: "fill", BatchSize: 10}

	for name, tc := range map[string]struct {
		edit func(*bbm.Definition)
		want error
		msg  string
	}{
		"unknown work":       {func(d *bbm.Definition) { d.Work = "nope" }, bbm.ErrUnknownWork, `"nope"`},
		"missing table":      {func(d *bbm.Definition) { d.Table = "no_such_table" }, bbm.ErrInvalidTable, "does not exist"},
		"missing schema":     {func(d *bbm.Definition) { d.Table = "nope.items" }, bbm.ErrInvalidTable, "does not exist"},
		"missing column":     {func(d *bbm.Definition) { d.Column = "nope" }, bbm.ErrInvalidColumn, "does not exist"},
		"nullable key":       {func(d *bbm.Definition) { d.Column = "filled" }, bbm.ErrNullableKey, "SET NOT NULL"},
		"nullable key of x":  {func(d *bbm.Definition) { d.Table = "x" }, bbm.ErrNullableKey, "NULL"},
		"unorderable key":    {func(d *bbm.Definition) { d.Table, d.Column = "docs", "doc" }, bbm.ErrInvalidColumn, "json"},
		"key twice":          {func(d *bbm.Definition) { d.Key = []string{"id", "id"} }, bbm.ErrInvalidColumn, "twice"},
		"missing key column": {func(d *bbm.Definition) { d.Key = []string{"id", "nope"} }, bbm.ErrInvalidColumn, "does not exist"},
		"bound not a bigint": {func(d *bbm.Definition) { d.From = bbm.Key{"abc"} }, bbm.ErrInvalidRange, "abc"},
		"bound arity":        {func(d *bbm.Definition) { d.To = bbm.Key{"1", "2"} }, bbm.ErrInvalidRange, "2 values"},
		"bad args":           {func(d *bbm.Definition) { d.Args = []byte("{not json") }, bbm.ErrInvalidArgs, "JSON"},
		"unmarshalable args": {func(d *bbm.Definition) { d.Args = func() {} }, bbm.ErrInvalidArgs, ""},
		"bad failure policy": {func(d *bbm.Definition) { d.OnFailure = "shrug" }, bbm.ErrInvalidName, "shrug"},
		"injection":          {func(d *bbm.Definition) { d.Table = "users; DROP TABLE x" }, bbm.ErrInvalidTable, "users; DROP TABLE x"},
		"quoted injection":   {func(d *bbm.Definition) { d.Table = `items"; DROP TABLE x; --` }, bbm.ErrInvalidTable, ""},
		"three parts":        {func(d *bbm.Definition) { d.Table = `"x"."y"."z"` }, bbm.ErrInvalidTable, "3 dotted parts"},
		"column injection":   {func(d *bbm.Definition) { d.Column = "id; DROP TABLE x" }, bbm.ErrInvalidColumn, ""},
		"quoted odd table":   {func(d *bbm.Definition) { d.Table = `"users; DROP TABLE x"` }, bbm.ErrInvalidTable, "does not exist"},
		"from above to":      {func(d *bbm.Definition) { d.From, d.To = bbm.IntKey(50), bbm.IntKey(10) }, bbm.ErrInvalidRange, "from 50 > to 10"},
		"from above table":   {func(d *bbm.Definition) { d.From = bbm.IntKey(500) }, bbm.ErrInvalidRange, "500"},
		"text order":         {func(d *bbm.Definition) { d.From, d.To = bbm.IntKey(9), bbm.IntKey(10) }, nil, ""},
		"zero batch":         {func(d *bbm.Definition) { d.BatchSize = 0 }, bbm.ErrInvalidBatchSize, "0"},
		"negative batch":     {func(d *bbm.Definition) { d.BatchSize = -5 }, bbm.ErrInvalidBatchSize, "-5"},
		"empty name":         {func(d *bbm.Definition) { d.Name = "" }, bbm.ErrInvalidName, ""},
		"bad name":           {func(d *bbm.Definition) { d.Name = "a name with spaces" }, bbm.ErrInvalidName, ""},
		"bad strategy":       {func(d *bbm.Definition) { d.Strategy = "random" }, bbm.ErrInvalidStrategy, "random"},
		"null without index": {func(d *bbm.Definition) { d.Strategy, d.Column = bbm.NullKeys, "filled" }, bbm.ErrMissingNullIndex, "CREATE INDEX"},
	} {
		t.Run(name, func(t *testing.T) {
			d := ok
			tc.edit(&d)
			m, err := admin.Register(ctx, d)
			if tc.want == nil {
				// Bounds compare as integers ("9" < "10"), not as text.
				require.NoError(t, err)
				_, err = pool.Exec(ctx, `DELETE FROM ferry_bbm_migrations WHERE id = $1`, m.ID)
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
			require.Nil(t, m)
		})
	}
	_, err = admin.Register(ctx, ok)
	require.NoError(t, err)
	_, err = admin.Register(ctx, ok)
	require.ErrorIs(t, err, bbm.ErrDuplicateMigration)
	require.ErrorContains(t, err, `"m"`)

	// Nothing was lost or created along the way.
	require.Equal(t, 1, countWhere(t, pool, `SELECT count(*) FROM ferry_bbm_migrations`))
	require.Equal(t, 100, countWhere(t, pool, `SELECT count(*) FROM items`))
	require.Equal(t, 0, countWhere(t, pool, `SELECT count(*) FROM x`))
	require.Equal(t, 0, countWhere(t, pool, `SELECT count(*) FROM users`))
}

func TestRegisterDetectsKeyRange(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	_, err := pool.Exec(ctx, `CREATE TABLE sparse (id bigint PRIMARY KEY, filled bigint);
		INSERT INTO sparse (id) VALUES (1000), (1500), (9000); CREATE TABLE empty (id int PRIMARY KEY, filled bigint)`)
	require.NoError(t, err)
	w := fillWorker(t, pool, fastOptions())
	a := w.Admin()

	m, err := a.Register(ctx, bbm.Definition{Name: "auto", Table: "sparse", Column: "id", Work: "fill", BatchSize: 100})
	require.NoError(t, err)
	require.Equal(t, []bbm.Key{bbm.IntKey(1000), bbm.IntKey(9000)}, []bbm.Key{m.Lower, m.Upper})
	require.Positive(t, m.EstimatedRows) // the planner's guess: the table was never analyzed
	m, err = a.Register(ctx, bbm.Definition{Name: "min_given", Table: "sparse", Column: "id", Work: "fill", BatchSize: 100, From: bbm.IntKey(1)})
	require.NoError(t, err)
	require.Equal(t, []bbm.Key{bbm.IntKey(1), bbm.IntKey(9000)}, []bbm.Key{m.Lower, m.Upper})
	m, err = a.Register(ctx, bbm.Definition{Name: "both", Table: "sparse", Column: "id", Work: "fill", BatchSize: 100, From: bbm.IntKey(-5), To: bbm.IntKey(1200)})
	require.NoError(t, err)
	require.Equal(t, []bbm.Key{bbm.IntKey(-5), bbm.IntKey(1200)}, []bbm.Key{m.Lower, m.Upper})
	require.Equal(t, bbm.StatusActive, m.Status)
	m, err = a.Register(ctx, bbm.Definition{Name: "empty", Table: "empty", Column: "id", Work: "fill", BatchSize: 100})
	require.NoError(t, err)
	require.Equal(t, bbm.StatusFinished, m.Status, "an empty table has nothing to do")
	m, err = a.Register(ctx, bbm.Definition{Name: "paused", Table: "sparse", Column: "id", Work: "fill", BatchSize: 100, Paused: true})
	require.NoError(t, err)
	require.Equal(t, bbm.StatusPaused, m.Status)
}

// Quoted, mixed-case, schema-qualified names are resolved exactly and only
// ever reach SQL quoted.
func TestRegisterQuotedSchemaQualifiedNames(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	_, err := pool.Exec(ctx, `CREATE SCHEMA "Odd Schema";
		CREATE TABLE "Odd Schema"."Items; x" ("Key" bigint PRIMARY KEY, filled bigint);
		INSERT INTO "Odd Schema"."Items; x" ("Key") SELECT generate_series(1, 250)`)
	require.NoError(t, err)
	w := fillWorker(t, pool, fastOptions())
	m, err := w.Admin().Register(ctx, bbm.Definition{Name: "odd", Table: `"Odd Schema"."Items; x"`, Column: `"Key"`, Work: "fill", BatchSize: 100})
	require.NoError(t, err)
	require.Equal(t, "Odd Schema", m.Schema)
	require.Equal(t, "Items; x", m.Table)
	require.Equal(t, "Key", m.Column)
	require.Equal(t, `"Odd Schema"."Items; x"`, m.QualifiedTable())
	require.NoError(t, w.Run(ctx))
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM "Odd Schema"."Items; x" WHERE filled IS DISTINCT FROM "Key" * 2`))

	// Unquoted names fold to lower case, as in SQL: "Key" is not key.
	_, err = w.Admin().Register(ctx, bbm.Definition{Name: "odd2", Table: `"Odd Schema"."Items; x"`, Column: "Key", Work: "fill", BatchSize: 100})
	require.ErrorIs(t, err, bbm.ErrInvalidColumn)
}

func TestPauseResumeRetryAndStatus(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 1000)
	w := fillWorker(t, pool, fastOptions())
	a := w.Admin()
	_, err := a.Register(ctx, bbm.Definition{Name: "m", Table: "items", Column: "id", Work: "fill", BatchSize: 100})
	require.NoError(t, err)

	p, err := a.Status(ctx, "m")
	require.NoError(t, err)
	require.Equal(t, 0.0, p.Percent)
	require.InDelta(t, 1000, p.RowsTotal, 10, "the planner's estimate")
	require.False(t, p.Exact)
	require.Equal(t, time.Duration(-1), p.ETA, "ETA is unknown before any job")
	require.Contains(t, p.String(), "ETA unknown")

	m, err := a.Pause(ctx, "m")
	require.NoError(t, err)
	require.Equal(t, bbm.StatusPaused, m.Status)
	_, err = a.Pause(ctx, "m")
	require.NoError(t, err, "pausing twice is a no-op")
	require.NoError(t, w.Run(ctx))
	require.Equal(t, 1000, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`), "a paused migration ran")

	n, err := w.ResumeEligibleMigrations(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	p, err = a.Status(ctx, "m")
	require.NoError(t, err)
	require.Equal(t, 100.0, p.Percent)
	require.Zero(t, p.ETA)
	require.Positive(t, p.Rate)

	_, err = a.Pause(ctx, "m")
	require.ErrorIs(t, err, bbm.ErrInvalidTransition)
	_, err = a.Resume(ctx, "m")
	require.ErrorIs(t, err, bbm.ErrInvalidTransition)
	_, err = a.RetryFailed(ctx, "m")
	require.ErrorIs(t, err, bbm.ErrInvalidTransition)
	_, err = a.Status(ctx, "nope")
	require.ErrorIs(t, err, bbm.ErrMigrationNotFound)
	_, err = a.Pause(ctx, "nope")
	require.ErrorIs(t, err, bbm.ErrMigrationNotFound)
}

// Progress and ETA come from the jobs done so far; a Handler that wraps the
// worker stops after four jobs to look at a half-done migration.
func TestStatusMidway(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 1000)
	opts := fastOptions()
	h := &stopAfter{n: 4}
	opts.Handler = h
	w := bbm.NewSyncWorker(pool, opts)
	h.inner = w
	require.NoError(t, w.Register(fillWork("fill")))
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "m", Table: "items", Column: "id", Work: "fill", BatchSize: 100})
	require.NoError(t, err)
	require.NoError(t, w.Run(ctx))
	p, err := w.Admin().Status(ctx, "m")
	require.NoError(t, err)
	require.Equal(t, bbm.StatusRunning, p.Migration.Status)
	require.InDelta(t, 40.0, p.Percent, 0.5, "of the planner's estimate")
	require.Equal(t, 4, p.Jobs.Finished)
	require.Positive(t, p.Rate)
	require.Positive(t, p.ETA)
	require.Contains(t, p.String(), "40.")
	all, err := w.Admin().StatusAll(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, 4, h.found)
}

// stopAfter is a Handler that wraps a worker and finds no more jobs after n.
type stopAfter struct {
	inner bbm.Handler
	n     int
	found int
}

func (h *stopAfter) FindJob(ctx context.Context, s bbm.Store) (*bbm.Job, error) {
	if h.found == h.n {
		return nil, nil
	}
	j, err := h.inner.FindJob(ctx, s)
	if j != nil {
		h.found++
	}
	return j, err
}

func (h *stopAfter) ExecuteJob(ctx context.Context, s bbm.Store, j *bbm.Job) error {
	return h.inner.ExecuteJob(ctx, s, j)
}

// Admin.Jobs pages a migration's jobs by name; unknown names and bad
// options are refused.
func TestAdminJobsPages(t *testing.T) {
	ctx := context.Background()
	w := memWorker(t, bbmtest.NewStore(bbmtest.StoreOptions{}), nil, 10)
	require.NoError(t, w.Run(ctx)) // 10 rows in batches of 4: 3 jobs
	admin := w.Admin()
	first, err := admin.Jobs(ctx, "fill", bbm.JobListOptions{Limit: 2})
	require.NoError(t, err)
	require.Len(t, first, 2)
	rest, err := admin.Jobs(ctx, "fill", bbm.JobListOptions{After: first[1].ID, Limit: 2})
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.Equal(t, bbm.JobFinished, rest[0].Status)
	_, err = admin.Jobs(ctx, "nope", bbm.JobListOptions{Limit: 2})
	require.ErrorIs(t, err, bbm.ErrMigrationNotFound)
	_, err = admin.Jobs(ctx, "fill", bbm.JobListOptions{Limit: 0})
	require.ErrorIs(t, err, bbm.ErrInvalidListing)
}
