package bbm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func waitStatus(t *testing.T, a *bbm.Admin, name string, want bbm.Status) {
	t.Helper()
	require.Eventually(t, func() bool {
		m, err := a.Migration(context.Background(), name)
		require.NoError(t, err)
		return m.Status == want
	}, 30*time.Second, 5*time.Millisecond)
}

func TestWorkerRunsMigrationsInBackground(t *testing.T) {
	storagetest.ForEachHandle(t, func(t *testing.T, kind storagetest.HandleKind) {
		ctx := context.Background()
		pool := storagetest.Handle(t, kind)
		itemsTable(t, pool, "a", 500)
		itemsTable(t, pool, "b", 500)
		w := bbm.NewWorker(pool, fastOptions())
		require.NoError(t, w.Register(fillWork("fill")))
		require.NoError(t, w.Start(ctx))
		require.ErrorIs(t, w.Start(ctx), bbm.ErrWorkerRunning)
		require.ErrorIs(t, w.Run(ctx), bbm.ErrWorkerRunning)

		// Registered while the worker idles: it is picked up.
		register(t, w.Admin(), "a", "a", "fill", 100)
		waitStatus(t, w.Admin(), "a", bbm.StatusFinished)
		register(t, w.Admin(), "b", "b", "fill", 100)
		waitStatus(t, w.Admin(), "b", bbm.StatusFinished)
		require.NoError(t, w.Stop(ctx))
		require.NoError(t, w.Stop(ctx), "stopping a stopped worker is a no-op")
		requireFilled(t, pool, "a")
		requireFilled(t, pool, "b")

		// It can run again after a stop; Run returns nil after Stop.
		itemsTable(t, pool, "c", 100)
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		register(t, w.Admin(), "c", "c", "fill", 100)
		waitStatus(t, w.Admin(), "c", bbm.StatusFinished)
		require.NoError(t, w.Stop(ctx))
		require.NoError(t, <-done)
	})
}

// blocker is a Work that signals when it starts and then waits for release
// or for its context.
type blocker struct {
	started chan bbm.Batch
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan bbm.Batch, 100), release: make(chan struct{})}
}

func (b *blocker) work(name string) bbm.Work {
	fill := fillWork(name)
	return bbm.WorkFunc(name, func(ctx context.Context, db storage.Querier, batch bbm.Batch) error {
		if err := fill.Do(ctx, db, batch); err != nil {
			return err
		}
		b.started <- batch
		select {
		case <-b.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// Stop lets the running job finish while its context allows.
func TestWorkerStopFinishesCurrentJob(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	bl := newBlocker()
	w := bbm.NewWorker(pool, fastOptions())
	require.NoError(t, w.Register(bl.work("block")))
	register(t, w.Admin(), "m", "items", "block", 100)
	require.NoError(t, w.Start(ctx))
	<-bl.started
	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(ctx) }()
	time.Sleep(200 * time.Millisecond) // Stop has been called (20 ms left a loaded machine little room)
	close(bl.release)
	require.NoError(t, <-stopped)
	jobs := jobsOf(t, pool, "m")
	require.Len(t, jobs, 1, "no job started after Stop")
	require.Equal(t, bbm.JobFinished, jobs[0].Status)
	require.Equal(t, 100, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled = id * 2`))
}

// When Stop's context ends first, the job is abandoned cleanly: rolled
// back, recorded as cancelled, its attempt given back; it runs again later.
func TestWorkerStopAbandonsJob(t *testing.T) {
	storagetest.ForEachHandle(t, func(t *testing.T, kind storagetest.HandleKind) {
		ctx := context.Background()
		pool := storagetest.Handle(t, kind)
		itemsTable(t, pool, "items", 200)
		bl := newBlocker()
		w := bbm.NewWorker(pool, fastOptions())
		require.NoError(t, w.Register(bl.work("block")))
		register(t, w.Admin(), "m", "items", "block", 100)
		require.NoError(t, w.Start(ctx))
		<-bl.started
		sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, w.Stop(sctx), context.DeadlineExceeded)
		jobs := jobsOf(t, pool, "m")
		require.Len(t, jobs, 1)
		require.Equal(t, bbm.JobFailed, jobs[0].Status)
		require.Equal(t, bbm.CodeJobCancelled, jobs[0].ErrorCode)
		require.Equal(t, 0, jobs[0].Attempts, "a shutdown does not use up an attempt")
		require.Equal(t, 200, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`), "the abandoned job was not rolled back")
		require.Equal(t, bbm.StatusRunning, migrationOf(t, pool, "m").Status)

		close(bl.release)
		w2 := bbm.NewSyncWorker(pool, fastOptions())
		require.NoError(t, w2.Register(bl.work("block")))
		require.NoError(t, w2.Run(ctx))
		requireFilled(t, pool, "items")
	})
}

// Cancelling Run's context abandons the job the same way.
func TestWorkerContextCancelAbandonsJob(t *testing.T) {
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 100)
	bl := newBlocker()
	w := bbm.NewWorker(pool, fastOptions())
	require.NoError(t, w.Register(bl.work("block")))
	register(t, w.Admin(), "m", "items", "block", 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-bl.started
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	jobs := jobsOf(t, pool, "m")
	require.Equal(t, bbm.CodeJobCancelled, jobs[0].ErrorCode)
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`), "an advisory lock was kept")
}

// spy is a Handler around a worker that records when it looks for jobs
// and what claiming them gave.
type spy struct {
	inner   bbm.Handler
	mu      sync.Mutex
	finds   []time.Time
	execs   []time.Time
	results []error
	findErr error
	// gate is held by a test that must change the database while no
	// FindJob runs; each FindJob holds it shared.
	gate sync.RWMutex
}

func (s *spy) FindJob(ctx context.Context, st bbm.Store) (*bbm.Job, error) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.mu.Lock()
	s.finds = append(s.finds, time.Now())
	s.mu.Unlock()
	if s.findErr != nil {
		return nil, s.findErr
	}
	return s.inner.FindJob(ctx, st)
}

func (s *spy) ExecuteJob(ctx context.Context, st bbm.Store, j *bbm.Job) error {
	err := s.inner.ExecuteJob(ctx, st, j)
	s.mu.Lock()
	s.execs = append(s.execs, time.Now())
	s.results = append(s.results, err)
	s.mu.Unlock()
	return err
}

func (s *spy) snapshot() (finds, execs []time.Time, results []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.finds), slices.Clone(s.execs), slices.Clone(s.results)
}

// With nothing to do the worker backs off (doubling up to MaxBackoff).
// While another process runs as many jobs as Parallelism allows, it
// neither blocks nor runs jobs and asks again every Interval (a place frees
// up when any job ends); once the job is done it does the work.
func TestWorkerIdleBackoffAndFullBudget(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	opts := fastOptions()
	opts.Interval, opts.MaxBackoff, opts.Jitter = 10*time.Millisecond, 80*time.Millisecond, -1
	sp := &spy{}
	opts.Handler = sp
	w := bbm.NewWorker(pool, opts)
	sp.inner = w
	require.NoError(t, w.Register(fillWork("fill")))
	require.NoError(t, w.Start(ctx))
	require.Eventually(t, func() bool { f, _, _ := sp.snapshot(); return len(f) >= 6 }, 10*time.Second, time.Millisecond)
	finds, _, _ := sp.snapshot()
	// Each wait is at least the doubled interval, capped (timers never
	// fire early, so these lower bounds are exact).
	for i := 1; i < 6; i++ {
		want := min(opts.Interval<<(i-1), opts.MaxBackoff)
		require.GreaterOrEqual(t, finds[i].Sub(finds[i-1]), want, "idle wait %d", i)
	}

	// Another process's job, alive (its lease is renewed), claimed before
	// the worker looks again: it polls every 80 ms by now, and a worker
	// finding the migration first would claim that range itself.
	sp.gate.Lock()
	register(t, w.Admin(), "m", "items", "fill", 100)
	held := claimRange(t, pgStore(pool), migrationOf(t, pool, "m"), 1, 100, time.Minute)
	sp.gate.Unlock()
	require.Eventually(t, func() bool { _, e, _ := sp.snapshot(); return len(e) >= 6 }, 10*time.Second, time.Millisecond)
	_, execs, results := sp.snapshot()
	for i, err := range results {
		require.ErrorIs(t, err, bbm.ErrBusy, "claim %d", i)
		if i > 0 {
			require.GreaterOrEqual(t, execs[i].Sub(execs[i-1]), opts.Interval, "busy wait %d", i)
		}
	}
	require.Equal(t, 300, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`))

	_, err := pgStore(pool).FinishJob(ctx, nil, bbm.JobResult{JobID: held.ID, Attempt: held.Attempts})
	require.NoError(t, err)
	waitStatus(t, w.Admin(), "m", bbm.StatusFinished)
	require.NoError(t, w.Stop(ctx))
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM items WHERE id > 100 AND filled IS DISTINCT FROM id * 2`))
}

// Failing rounds back off exponentially too.
func TestWorkerBacksOffOnErrors(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	opts := fastOptions()
	opts.Interval, opts.MaxBackoff, opts.Jitter = 10*time.Millisecond, 40*time.Millisecond, -1
	sp := &spy{findErr: errors.New("database is down")}
	opts.Handler = sp
	w := bbm.NewWorker(pool, opts)
	sp.inner = w
	require.NoError(t, w.Start(ctx))
	require.Eventually(t, func() bool { g, _, _ := sp.snapshot(); return len(g) >= 5 }, 10*time.Second, time.Millisecond)
	require.NoError(t, w.Stop(ctx))
	grabs, _, _ := sp.snapshot()
	for i := 1; i < len(grabs); i++ {
		require.GreaterOrEqual(t, grabs[i].Sub(grabs[i-1]), min(opts.Interval<<(i-1), opts.MaxBackoff), "wait %d", i)
	}
}

// Several workers in goroutines of one process, sync and async, each with
// its own pool: exactly one runs a job at any time, every job runs once and
// finishes.
func TestConcurrentWorkersInGoroutines(t *testing.T) {
	for _, parallelism := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", parallelism), func(t *testing.T) { testConcurrentWorkers(t, parallelism) })
	}
}

// Several workers in goroutines of one process, sync and async, each with
// its own pool: at most Parallelism jobs run at any time (and with more
// than one allowed, more than one does), every job runs once and finishes.
func testConcurrentWorkers(t *testing.T, parallelism int) {
	ctx := context.Background()
	pool, url := pgSetupURL(t)
	itemsTable(t, pool, "items", 3000)
	var inFlight, maxInFlight atomic.Int32
	var ran sync.Map
	var runs atomic.Int32
	work := bbm.WorkFunc("exclusive", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			cur := maxInFlight.Load()
			if n <= cur || maxInFlight.CompareAndSwap(cur, n) {
				break
			}
		}
		if _, dup := ran.LoadOrStore(b.Start.String(), true); dup {
			t.Errorf("range %s ran twice", b.Start)
		}
		runs.Add(1)
		if _, err := db.Exec(ctx, `SELECT pg_sleep(0.02)`); err != nil {
			return err
		}
		return fillWork("x").Do(ctx, db, b)
	})
	opts := fastOptions()
	opts.Parallelism = parallelism
	var syncs []*bbm.SyncWorker
	var asyncs []*bbm.Worker
	for range 2 {
		s := bbm.NewSyncWorker(storage.FromPool(newPool(t, url)), opts)
		require.NoError(t, s.Register(work))
		syncs = append(syncs, s)
		a := bbm.NewWorker(storage.FromPool(newPool(t, url)), opts)
		require.NoError(t, a.Register(work))
		asyncs = append(asyncs, a)
	}
	register(t, syncs[0].Admin(), "m", "items", "exclusive", 100)
	for _, a := range asyncs {
		require.NoError(t, a.Start(ctx))
	}
	var wg sync.WaitGroup
	for _, s := range syncs {
		wg.Go(func() { require.NoError(t, s.Run(ctx)) })
	}
	wg.Wait()
	waitStatus(t, syncs[0].Admin(), "m", bbm.StatusFinished)
	for _, a := range asyncs {
		require.NoError(t, a.Stop(ctx))
	}
	require.LessOrEqual(t, maxInFlight.Load(), int32(parallelism), "more jobs ran at once than allowed")
	if parallelism > 1 {
		require.Greater(t, maxInFlight.Load(), int32(1), "jobs never ran in parallel")
	}
	t.Logf("at most %d jobs at once", maxInFlight.Load())
	require.Equal(t, int32(30), runs.Load())
	requireFilled(t, pool, "items")
	for _, j := range jobsOf(t, pool, "m") {
		require.Equal(t, bbm.JobFinished, j.Status)
		require.Equal(t, 1, j.Attempts)
	}
}

// Parallelism counts jobs across migrations: with 2, a worker runs the
// jobs of two migrations at once (the first has no other range to cut).
// A host with other Work on the same database has a budget of its own,
// so its job runs meanwhile too.
func TestParallelismAcrossMigrationsAndHosts(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	for _, table := range []string{"a", "b", "c"} {
		itemsTable(t, pool, table, 100)
	}
	bl := newBlocker()
	opts := fastOptions()
	opts.Parallelism = 2
	w := bbm.NewWorker(pool, opts)
	require.NoError(t, w.Register(bl.work("block")))
	opts.Parallelism = 1
	other := bbm.NewWorker(pool, opts)
	require.NoError(t, other.Register(bl.work("other")))
	register(t, w.Admin(), "a", "a", "block", 100)
	register(t, w.Admin(), "b", "b", "block", 100)
	register(t, other.Admin(), "c", "c", "other", 100)
	release := sync.OnceFunc(func() { close(bl.release) })
	require.NoError(t, w.Start(ctx))
	require.NoError(t, other.Start(ctx))
	t.Cleanup(func() { // on failure too: no Work left blocked
		release()
		_ = w.Stop(ctx)
		_ = other.Stop(ctx)
	})

	var running []string
	for range 3 {
		select {
		case b := <-bl.started:
			running = append(running, b.Migration)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v ran at once", running)
		}
	}
	require.ElementsMatch(t, []string{"a", "b", "c"}, running)
	release()
	for _, name := range []string{"a", "b", "c"} {
		waitStatus(t, w.Admin(), name, bbm.StatusFinished)
	}
	require.NoError(t, w.Stop(ctx))
	require.NoError(t, other.Stop(ctx))
	for _, table := range []string{"a", "b", "c"} {
		requireFilled(t, pool, table)
	}
}
