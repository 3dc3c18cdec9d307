package storage_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/fstest"

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
	rows, err := pool.Query(context.Background(), `SELECT version FROM ferry_schema_migrations ORDER BY version`)
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
			errs[i] = storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: fsys, Logger: quiet})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, []int{1, 2, 3}, appliedVersions(t, pool))
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
	err := storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: fsys, Logger: quiet})
	require.ErrorContains(t, err, "0002_broken.sql")
	require.ErrorContains(t, err, "no_such_table")
	require.Equal(t, []int{1}, appliedVersions(t, pool))
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
	require.NoError(t, storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: newer, Logger: quiet}))
	older := fstest.MapFS{"0001_a.sql": {Data: []byte(`SELECT 1`)}}
	err := storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{FS: older, Logger: quiet})
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
