package bbm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
)

func TestSyncWorkerBackfillsTable(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 10_000)
	var ev events
	opts := fastOptions()
	opts.Observer = ev.observer()
	w := fillWorker(t, pool, opts)
	m, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill_items", Table: "items", Column: "id", Work: "fill", BatchSize: 1000})
	require.NoError(t, err)
	require.Equal(t, bbm.IntKey(1), m.Lower)
	require.Equal(t, bbm.IntKey(10_000), m.Upper)
	require.Equal(t, "public", m.Schema)

	require.NoError(t, w.Run(ctx))
	require.Equal(t, 1, w.FinishedMigrationCount())
	requireFilled(t, pool, "items")

	p, err := w.Admin().Status(ctx, "fill_items")
	require.NoError(t, err)
	require.Equal(t, bbm.StatusFinished, p.Migration.Status)
	require.Equal(t, 100.0, p.Percent)
	require.Equal(t, 10, p.Jobs.Finished)
	require.Equal(t, int64(10_000), p.Jobs.RowsDone)
	t.Log(p)

	jobs, err := bbm.NewPostgresStore(pool, bbm.PostgresStoreOptions{}).Jobs(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, jobs, 10)
	for i, j := range jobs {
		require.Equal(t, bbm.JobFinished, j.Status)
		require.Equal(t, 1, j.Attempts)
		require.Equal(t, bbm.IntKey(int64(i*1000+1)), j.Start)
	}
	require.Len(t, ev.started, 10)
	require.Len(t, ev.finished, 10)
	require.Len(t, ev.done, 1)

	// A second run has nothing to do.
	require.NoError(t, w.Run(ctx))
	require.Equal(t, 0, w.FinishedMigrationCount())
}

// A *storage.DB works as well as a pool (the lock uses its primary).
func TestSyncWorkerOnStorageDB(t *testing.T) {
	ctx := context.Background()
	pool, url := pgSetupURL(t)
	itemsTable(t, pool, "items", 1000)
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: url, Logger: testLogger()})
	require.NoError(t, err)
	defer db.Close()
	w := bbm.NewSyncWorker(db, fastOptions())
	require.NoError(t, w.Register(fillWork("fill")))
	register(t, w.Admin(), "m", "items", "fill", 300)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
}

func TestRegisterWorkRejectsBadWork(t *testing.T) {
	w := bbm.NewSyncWorker(nil, bbm.Options{})
	noop := func(context.Context, storage.Querier, bbm.Batch) error { return nil }
	require.ErrorIs(t, w.Register(nil), bbm.ErrInvalidWork)
	require.ErrorIs(t, w.Register(bbm.WorkFunc("", noop)), bbm.ErrInvalidWork)
	require.ErrorIs(t, w.Register(bbm.WorkFunc("bad name", noop)), bbm.ErrInvalidWork)
	require.ErrorIs(t, w.Register(bbm.WorkFunc("a", noop), bbm.WorkFunc("a", noop)), bbm.ErrDuplicateWork)
	require.NoError(t, w.Register(bbm.WorkFunc("a", noop)))
	require.ErrorIs(t, w.Register(bbm.WorkFunc("a", noop)), bbm.ErrDuplicateWork)
	// Without a database or a Store, Run says so.
	require.ErrorIs(t, w.Run(context.Background()), bbm.ErrNoDatabase)
	_, err := w.Admin().Status(context.Background(), "x")
	require.ErrorIs(t, err, bbm.ErrNoDatabase)
}
