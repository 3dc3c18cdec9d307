package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

var quiet = slog.New(slog.DiscardHandler)

func emptyPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), storagetest.EmptyURL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func appliedVersions(t *testing.T, pool *pgxpool.Pool) []int {
	t.Helper()
	return versionsIn(t, pool, storage.MigrationsTable)
}

// testLine is the version table of the tests' own lines of migrations.
const testLine = "test_schema_migrations"

func versionsIn(t *testing.T, pool *pgxpool.Pool, table string) []int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT version FROM `+table+` ORDER BY version`)
	require.NoError(t, err)
	var out []int
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestMigrateAppliesEmbeddedSchemaOnceAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{Logger: quiet}))
	first := appliedVersions(t, pool)
	all, err := storage.LoadMigrations(nil)
	require.NoError(t, err)
	require.Len(t, first, len(all))
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{Logger: quiet}))
	require.Equal(t, first, appliedVersions(t, pool))
}

func TestMigrateConcurrentCallersApplyEachFileOnce(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte(`CREATE TABLE a (id int)`)},
		"0002_b.sql": {Data: []byte(`CREATE TABLE b (id int); INSERT INTO b VALUES (1)`)},
		"0003_c.sql": {Data: []byte(`INSERT INTO b VALUES (2)`)},
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: fsys, Table: testLine, Logger: quiet})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, []int{1, 2, 3}, versionsIn(t, pool, testLine))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM b`).Scan(&n))
	require.Equal(t, 2, n, "each file must run exactly once")
}

func TestMigrateFailingFileIsNamedAndRolledBack(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	fsys := fstest.MapFS{
		"0001_ok.sql":     {Data: []byte(`CREATE TABLE ok (id int)`)},
		"0002_broken.sql": {Data: []byte(`CREATE TABLE half (id int); SELECT * FROM no_such_table`)},
	}
	err := storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: fsys, Table: testLine, Logger: quiet})
	require.ErrorContains(t, err, "0002_broken.sql")
	require.ErrorContains(t, err, "no_such_table")
	require.Equal(t, []int{1}, versionsIn(t, pool, testLine))
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('half') IS NOT NULL`).Scan(&exists))
	require.False(t, exists, "the failed file's first statement must be rolled back")
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	newer := fstest.MapFS{
		"0001_a.sql": {Data: []byte(`SELECT 1`)},
		"0002_b.sql": {Data: []byte(`SELECT 1`)},
	}
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: newer, Table: testLine, Logger: quiet}))
	older := fstest.MapFS{"0001_a.sql": {Data: []byte(`SELECT 1`)}}
	err := storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: older, Table: testLine, Logger: quiet})
	require.ErrorIs(t, err, storage.ErrSchemaTooNew)
	require.ErrorContains(t, err, "version 2")
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"bad name":  {"create_users.sql": {Data: []byte(`SELECT 1`)}},
		"zero":      {"0000_zero.sql": {Data: []byte(`SELECT 1`)}},
		"duplicate": {"0001_a.sql": {}, "0001_b.sql": {}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := storage.LoadMigrations(fsys)
			require.Error(t, err)
		})
	}
}

func TestMigrateOnClosedPoolFails(t *testing.T) {
	pool := emptyPool(t)
	pool.Close()
	err := storage.MigrateWith(context.Background(), storage.FromPool(pool), storage.MigrateOptions{Logger: quiet})
	require.Error(t, err)
	require.False(t, errors.Is(err, storage.ErrSchemaTooNew))
}

// A host that runs its own migration files through MigrateWith after
// Ferry's gets its own tables: the two lines never share a version table.
func TestHostMigrationsHaveTheirOwnLine(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	h := storage.FromPool(pool)
	require.NoError(t, storage.MigrateWith(ctx, h, storage.MigrateOptions{Logger: quiet}))
	host := fstest.MapFS{
		"0001_repositories.sql": {Data: []byte(`CREATE TABLE repositories (id bigint PRIMARY KEY)`)},
		"0002_tags.sql":         {Data: []byte(`CREATE TABLE tags (id bigint PRIMARY KEY)`)},
	}
	require.NoError(t, storage.MigrateWith(ctx, h, storage.MigrateOptions{FS: host, Table: "registry_schema_migrations", Logger: quiet}))
	var tables int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename IN ('repositories', 'tags')`).Scan(&tables))
	require.Equal(t, 2, tables, "the host's migrations created its tables")
	all, err := storage.LoadMigrations(nil)
	require.NoError(t, err)
	require.Len(t, appliedVersions(t, pool), len(all), "Ferry's version table holds Ferry's migrations only")
	// Both lines stay idempotent and neither looks too new to the other.
	require.NoError(t, storage.MigrateWith(ctx, h, storage.MigrateOptions{Logger: quiet}))
	require.NoError(t, storage.MigrateWith(ctx, h, storage.MigrateOptions{FS: host, Table: "registry_schema_migrations", Logger: quiet}))
}

func TestMigrateOptionsKeepLinesApart(t *testing.T) {
	h := storage.FromPool(emptyPool(t))
	ctx := context.Background()
	fsys := fstest.MapFS{"0001_a.sql": {Data: []byte(`SELECT 1`)}}
	for name, opts := range map[string]storage.MigrateOptions{
		"FS without Table":     {FS: fsys},
		"FS on Ferry's table":  {FS: fsys, Table: storage.MigrationsTable},
		"Table without FS":     {Table: "x_schema_migrations"},
		"Table not identifier": {FS: fsys, Table: string(make([]byte, 64))},
	} {
		t.Run(name, func(t *testing.T) {
			opts.Logger = quiet
			require.ErrorIs(t, storage.MigrateWith(ctx, h, opts), storage.ErrConfig)
		})
	}
	require.ErrorIs(t, storage.Migrate(ctx, nil, quiet), storage.ErrConfig)
}

// schemaSnapshot describes every column, constraint and index of the
// current schema, order-independent, to compare schemas.
func schemaSnapshot(t *testing.T, q storage.Querier) string {
	t.Helper()
	var s *string
	require.NoError(t, q.QueryRow(context.Background(), `SELECT string_agg(x, E'\n' ORDER BY x) FROM (
		SELECT format('col %s.%s %s %s %s %s', table_name, column_name, udt_name, is_nullable, is_identity,
			coalesce(column_default, '')) AS x
		FROM information_schema.columns WHERE table_schema = current_schema()
		UNION ALL
		SELECT format('con %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint
		WHERE connamespace = current_schema()::regnamespace
		UNION ALL
		SELECT format('idx %s', indexdef) FROM pg_indexes WHERE schemaname = current_schema()) s`).Scan(&s))
	if s == nil {
		return ""
	}
	return *s
}

// Every one of Ferry's migrations has a down file that reverts it exactly:
// the schema after up then down equals the schema before, and up applies
// again after down.
func TestEveryFerryMigrationRevertsExactly(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	ms, err := storage.Migrations()
	require.NoError(t, err)
	exec := func(name, sql string) {
		t.Helper()
		require.NoError(t, storage.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql)
			return err
		}), name)
	}
	for _, m := range ms {
		require.NotEmpty(t, m.Down, "%s has no down file (%s)", m.Name, strings.Replace(m.Name, ".sql", ".down.sql", 1))
		before := schemaSnapshot(t, pool)
		exec(m.Name, m.Up)
		after := schemaSnapshot(t, pool)
		exec(m.Name+" down", m.Down)
		require.Equal(t, before, schemaSnapshot(t, pool), "%s down does not revert it", m.Name)
		exec(m.Name+" again", m.Up)
		require.Equal(t, after, schemaSnapshot(t, pool), "%s up after down", m.Name)
	}
	for i := len(ms) - 1; i >= 0; i-- {
		exec(ms[i].Name+" down", ms[i].Down)
	}
	require.Empty(t, schemaSnapshot(t, pool), "every down in reverse leaves nothing")
}

func TestMigrationsFSIsGolangMigrateLayout(t *testing.T) {
	ms, err := storage.Migrations()
	require.NoError(t, err)
	fsys := storage.MigrationsFS()
	var names []string
	for _, m := range ms {
		base := strings.TrimSuffix(m.Name, ".sql")
		names = append(names, base+".up.sql", base+".down.sql")
		up, err := fs.ReadFile(fsys, base+".up.sql")
		require.NoError(t, err)
		require.Equal(t, m.Up, string(up))
	}
	require.NoError(t, fstest.TestFS(fsys, names...))
	again, err := storage.LoadMigrations(fsys)
	require.NoError(t, err)
	require.Len(t, again, len(ms))
	for i := range ms {
		require.Equal(t, ms[i].Up, again[i].Up)
		require.Equal(t, ms[i].Down, again[i].Down)
		require.Equal(t, ms[i].Version, again[i].Version)
	}
}

// With a schema, Migrate puts Ferry's tables and version table there and
// leaves the search_path's schema (public) empty; the session keeps its
// search_path.
func TestMigrateIntoSchema(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	h, err := storage.WithSchema(storage.FromPool(pool), `ferry "x"`)
	require.NoError(t, err)
	require.NoError(t, storage.Migrate(ctx, h, quiet))
	require.NoError(t, storage.Migrate(ctx, h, quiet))
	var inSchema, inPublic int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE schemaname = 'ferry "x"'),
		count(*) FILTER (WHERE schemaname = 'public') FROM pg_tables`).Scan(&inSchema, &inPublic))
	require.Zero(t, inPublic)
	all, err := storage.Migrations()
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+storage.Table(h, storage.MigrationsTable)).Scan(&n))
	require.Equal(t, len(all), n)
	require.Greater(t, inSchema, 4)
	var path string
	require.NoError(t, pool.QueryRow(ctx, `SHOW search_path`).Scan(&path))
	require.Equal(t, `"$user", public`, path)
	require.Equal(t, `"ferry ""x"""."ferry_leases"`, storage.Table(h, "ferry_leases"))
	require.Equal(t, `"ferry_leases"`, storage.Table(storage.FromPool(pool), "ferry_leases"))

	// The same database without the schema is a different, empty line.
	require.NoError(t, storage.Migrate(ctx, storage.FromPool(pool), quiet))
	require.Equal(t, n, len(appliedVersions(t, pool)))
}

func TestWithSchemaRefusesBadInput(t *testing.T) {
	h := storage.FromPool(emptyPool(t))
	for _, bad := range []string{"", string(make([]byte, 64)), "a\x00b", "\xff"} {
		_, err := storage.WithSchema(h, bad)
		require.ErrorIs(t, err, storage.ErrConfig, "%q", bad)
	}
	_, err := storage.WithSchema(nil, "ferry")
	require.ErrorIs(t, err, storage.ErrConfig)
	db, err := storage.Wrap(h)
	require.NoError(t, err)
	_, err = storage.WithSchema(db, "ferry")
	require.ErrorIs(t, err, storage.ErrConfig)
	s, err := storage.WithSchema(h, "ferry")
	require.NoError(t, err)
	s, err = storage.WithSchema(s, "other")
	require.NoError(t, err)
	require.Equal(t, "other", storage.SchemaOf(s))
	db, err = storage.Wrap(s)
	require.NoError(t, err)
	require.Equal(t, "other", storage.SchemaOf(db), "Wrap inherits the primary's schema")
	db, err = storage.WrapWith(storage.Config{Schema: "third", Logger: quiet}, s)
	require.NoError(t, err)
	require.Equal(t, "third", storage.SchemaOf(db))
	_, err = storage.WrapWith(storage.Config{Schema: "\xff"}, s)
	require.ErrorIs(t, err, storage.ErrConfig)
}

func TestMigrateUpTo(t *testing.T) {
	ctx := context.Background()
	pool := emptyPool(t)
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{UpTo: 2, Logger: quiet}))
	require.Equal(t, []int{1, 2}, appliedVersions(t, pool))
	require.NoError(t, storage.Migrate(ctx, storage.FromPool(pool), quiet))
	all, err := storage.Migrations()
	require.NoError(t, err)
	require.Len(t, appliedVersions(t, pool), len(all))
}
