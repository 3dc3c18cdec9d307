package bbm_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
)

// A job that runs much longer than JobLease keeps its claim: its worker
// renews the lease, so other workers (with room in the parallelism budget)
// do not take it over.
func TestLeaseIsRenewedWhileWorkRuns(t *testing.T) {
	ctx := context.Background()
	pool, url := pgSetupURL(t)
	itemsTable(t, pool, "items", 400)
	var runs sync.Map
	slow := bbm.WorkFunc("slow", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		if _, loaded := runs.LoadOrStore(b.Start.String(), true); loaded {
			t.Errorf("range %s ran twice", b.Start)
		}
		if _, err := db.Exec(ctx, `SELECT pg_sleep(2.5)`); err != nil {
			return err
		}
		return fillWork("x").Do(ctx, db, b)
	})
	opts := fastOptions()
	// 2.5 leases long; renewals every 333ms leave room for a loaded machine.
	opts.JobLease = time.Second
	opts.Parallelism = 4
	var workers []*bbm.SyncWorker
	for range 2 {
		w := bbm.NewSyncWorker(storage.FromPool(newPool(t, url)), opts)
		require.NoError(t, w.Register(slow))
		workers = append(workers, w)
	}
	register(t, workers[0].Admin(), "m", "items", "slow", 100)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { require.NoError(t, w.Run(ctx)) })
	}
	wg.Wait()
	requireFilled(t, pool, "items")
	for _, j := range jobsOf(t, pool, "m") {
		require.Equal(t, 1, j.Attempts, "job %s was taken over", j.Start)
	}
}

// lostOnce is a Store whose first lease renewal finds the job taken over.
type lostOnce struct {
	bbm.Store
	lost atomic.Bool
}

func (s *lostOnce) RenewLease(ctx context.Context, jobID int64, attempt int, lease time.Duration) error {
	if s.lost.CompareAndSwap(false, true) {
		return bbm.ErrJobLost
	}
	return s.Store.RenewLease(ctx, jobID, attempt, lease)
}

// A worker that learns its job was taken over stops the Work: the
// transaction rolls back, nothing is recorded for the attempt, and the
// range is applied once, by the attempt that owns it.
func TestLostLeaseStopsTheWork(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	countedTable(t, pool, 200)
	var cancelled atomic.Int32
	work := bbm.WorkFunc("count", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		if _, err := db.Exec(ctx, `UPDATE counted SET n = n + 1 WHERE `+cond, args...); err != nil {
			return err
		}
		if b.Attempt == 1 && keyInt(b.Start) == 1 {
			<-ctx.Done() // runs until the loss is noticed
			cancelled.Add(1)
			return ctx.Err()
		}
		return nil
	})
	var ev events
	opts := fastOptions()
	opts.JobLease = 150 * time.Millisecond
	opts.Store = &lostOnce{Store: pgStore(pool)}
	opts.Observer = ev.observer()
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(work))
	register(t, w.Admin(), "m", "counted", "count", 100)
	require.NoError(t, w.Run(ctx))
	require.Equal(t, int32(1), cancelled.Load())
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM counted WHERE n <> 1`), "rows not applied exactly once")
	fails := ev.failures()
	require.NotEmpty(t, fails)
	require.ErrorIs(t, fails[0].Err, bbm.ErrJobLost)
	jobs := jobsOf(t, pool, "m")
	require.Equal(t, 2, jobs[0].Attempts, "the range ran again after its lease expired")
	require.Equal(t, bbm.CodeNone, jobs[0].ErrorCode)
}

// RunMigrations runs only the named migrations, and says why it cannot run
// one.
func TestRunMigrationsRunsOnlyThoseNamed(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "a", 200)
	itemsTable(t, pool, "b", 200)
	w := fillWorker(t, pool, fastOptions())
	register(t, w.Admin(), "a", "a", "fill", 100)
	register(t, w.Admin(), "b", "b", "fill", 100)
	require.ErrorIs(t, w.RunMigrations(ctx, "nope"), bbm.ErrMigrationNotFound)
	require.ErrorIs(t, w.RunMigrations(ctx), bbm.ErrMigrationNotFound)
	_, err := w.Admin().Pause(ctx, "b")
	require.NoError(t, err)
	require.ErrorIs(t, w.RunMigrations(ctx, "b"), bbm.ErrInvalidTransition)

	require.NoError(t, w.RunMigrations(ctx, "a"))
	requireFilled(t, pool, "a")
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "a").Status)
	require.Equal(t, bbm.StatusPaused, migrationOf(t, pool, "b").Status)
	_, err = w.Admin().Resume(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, 200, countWhere(t, pool, `SELECT count(*) FROM b WHERE filled IS NULL`))
	require.NoError(t, w.RunMigrations(ctx, "a", "b"))
	requireFilled(t, pool, "b")
}

// A pool that cannot hold a transaction per running job plus one
// connection for lease renewals is refused: with 4 jobs on a 4-connection
// pool, renewals waited for a job to end and every lease expired while its
// Work ran (each range then ran twice). Before the check this test's Run
// started the jobs.
func TestPoolTooSmallForParallelism(t *testing.T) {
	_, url := pgSetupURL(t)
	pool := poolOf(t, url, 4)
	opts := fastOptions()
	opts.Parallelism = 4
	w := bbm.NewSyncWorker(storage.FromPool(pool), opts)
	require.NoError(t, w.Register(fillWork("x")))
	err := w.Run(t.Context())
	require.ErrorIs(t, err, bbm.ErrPoolTooSmall)
	require.ErrorContains(t, err, "at least 5 connections")

	opts.Parallelism = 3
	w = bbm.NewSyncWorker(storage.FromPool(pool), opts)
	require.NoError(t, w.Register(fillWork("x")))
	require.NoError(t, w.Run(t.Context()))
}

// The check also holds when the host passes Ferry's PostgresStore on the
// jobs' own pool (to set store options, say), and not when the store
// renews through another pool.
func TestPoolTooSmallWithHostStore(t *testing.T) {
	_, url := pgSetupURL(t)
	db := storage.FromPool(poolOf(t, url, 2))
	opts := fastOptions()
	opts.Parallelism = 2
	opts.Store = bbm.NewPostgresStore(db, bbm.PostgresStoreOptions{})
	w := bbm.NewSyncWorker(db, opts)
	require.NoError(t, w.Register(fillWork("x")))
	require.ErrorIs(t, w.Run(t.Context()), bbm.ErrPoolTooSmall)

	opts.Store = bbm.NewPostgresStore(storage.FromPool(newPool(t, url)), bbm.PostgresStoreOptions{})
	w = bbm.NewSyncWorker(db, opts)
	require.NoError(t, w.Register(fillWork("x")))
	require.NoError(t, w.Run(t.Context()))
}
