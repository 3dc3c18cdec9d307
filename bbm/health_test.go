package bbm_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// timeline records when jobs started and when the worker was held;
// firstHold is how long after the first job the first hold for a reason
// came.
type timeline struct {
	mu    sync.Mutex
	jobs  []time.Time
	holds []bbm.ThrottleEvent
	held  []time.Time
}

func (tl *timeline) observer() bbm.Observer {
	return bbm.ObserverFuncs{
		OnJobStart: func(ctx context.Context, _ bbm.JobStartEvent) context.Context {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			tl.jobs = append(tl.jobs, time.Now())
			return ctx
		},
		OnThrottled: func(_ context.Context, e bbm.ThrottleEvent) {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			tl.holds = append(tl.holds, e)
			tl.held = append(tl.held, time.Now())
		},
	}
}

func (tl *timeline) firstHold(reason string) (time.Duration, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i, h := range tl.holds {
		if !strings.Contains(h.Reason, reason) {
			continue
		}
		if len(tl.jobs) == 0 {
			return 0, true
		}
		return tl.held[i].Sub(tl.jobs[0]), true
	}
	return 0, false
}

// With default options the worker backs off, within seconds, when a
// streaming replica (replaying WAL two seconds late) lags beyond the
// configured bound, and finishes once it keeps up. The replica reports a
// replay lag only once it has replayed something, two seconds after the
// write, so jobs take 200 ms until the first hold (20 of them outlast
// that) and 30 ms after it: at 30 ms throughout a fast machine finished
// all 20 in 1.3 s, before any lag was visible, and the test failed
// (fresh-clone CI); at 200 ms throughout the held run took a minute.
func TestDefaultPacingBacksOffWhenReplicaLags(t *testing.T) {
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, 2*time.Second)
	primary := newPool(t, rep.PrimaryURL)
	itemsTable(t, primary, "items", 2_000)
	var tl timeline
	opts := fastOptions()
	opts.Observer = tl.observer()
	opts.Health = bbm.HealthOptions{MaxReplicaLag: 500 * time.Millisecond, SampleInterval: 100 * time.Millisecond,
		RetryAfter: 100 * time.Millisecond}
	w := bbm.NewSyncWorker(storage.FromPool(primary), opts)
	require.NoError(t, w.Register(bbm.WorkFunc("slow_fill", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		pause := 0.2
		if _, held := tl.firstHold("replica lag"); held {
			pause = 0.03
		}
		if _, err := db.Exec(ctx, `SELECT pg_sleep($1)`, pause); err != nil {
			return err
		}
		return fillWork("x").Do(ctx, db, b)
	})))
	register(t, w.Admin(), "m", "items", "slow_fill", 100)
	t0 := time.Now()
	require.NoError(t, w.Run(ctx))
	requireFilled(t, primary, "items")
	after, ok := tl.firstHold("replica lag")
	require.True(t, ok, "the worker never held for the lagging replica (holds: %v)", tl.holds)
	t.Logf("first hold for replica lag %s after the first job (apply delay 2s, bound 500ms); %d jobs, %d holds, run %s",
		after.Round(time.Millisecond), len(tl.jobs), len(tl.holds), time.Since(t0).Round(time.Millisecond))
	require.Less(t, after, 15*time.Second, "the worker did not back off within seconds")
}

// Sessions waiting long on locks hold the worker until they are done.
func TestHealthHoldsWhileSessionsWaitOnLocks(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	execSQL(t, pool, `CREATE TABLE other (id int)`)
	locker, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = locker.Rollback(ctx) })
	_, err = locker.Exec(ctx, `LOCK TABLE other IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	waited := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, `SELECT count(*) FROM other`) // waits for the lock
		waited <- err
	}()
	var tl timeline
	opts := fastOptions()
	opts.Observer = tl.observer()
	opts.Health = bbm.HealthOptions{LockWait: 100 * time.Millisecond, SampleInterval: 50 * time.Millisecond, RetryAfter: 50 * time.Millisecond}
	w := fillWorker(t, pool, opts)
	register(t, w.Admin(), "m", "items", "fill", 100)
	// The worker starts once the session has waited longer than LockWait,
	// as the health check counts it: a sleep assumed it had by then.
	require.Eventually(t, func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND state = 'active' AND clock_timestamp() - query_start > interval '150 milliseconds'`) > 0
	}, 10*time.Second, 10*time.Millisecond, "the session never waited on the lock")
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if !assert.Eventually(t, func() bool { _, ok := tl.firstHold("waiting on locks"); return ok }, 10*time.Second, 10*time.Millisecond) {
		tl.mu.Lock()
		t.Errorf("holds: %v", tl.holds)
		tl.mu.Unlock()
	}
	require.Equal(t, 300, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`), "a job ran while sessions waited")
	require.NoError(t, locker.Rollback(ctx))
	require.NoError(t, <-waited)
	require.NoError(t, <-done)
	requireFilled(t, pool, "items")
}

// MaxWALRate holds jobs while the primary writes WAL faster than it.
func TestHealthHoldsOnWALRate(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	// 40 jobs, so that the run outlasts a few sample intervals: with 4 jobs
	// an idle machine finished them before the second WAL sample (the
	// first only records the position) and the test failed 5 times in 6.
	itemsTable(t, pool, "items", 20_000)
	var tl timeline
	opts := fastOptions()
	opts.Observer = tl.observer()
	opts.Health = bbm.HealthOptions{MaxWALRate: 64 << 10, SampleInterval: 20 * time.Millisecond, RetryAfter: 20 * time.Millisecond}
	w := fillWorker(t, pool, opts)
	register(t, w.Admin(), "m", "items", "fill", 500)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	_, ok := tl.firstHold("WAL rate")
	require.True(t, ok, "never held for the WAL rate: %v", tl.holds)
}

// outage makes the database refuse connections and drops the ones it has,
// for d, as a restart or a network partition would.
// began, if not nil, is closed once the sessions are terminated.
func outage(t *testing.T, url string, d time.Duration, began chan<- struct{}) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	db := cfg.Database
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer admin.Close(ctx)
	ident := pgx.Identifier{db}.Sanitize()
	_, err = admin.Exec(ctx, `ALTER DATABASE `+ident+` WITH ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db)
	require.NoError(t, err)
	if began != nil {
		close(began)
	}
	time.Sleep(d)
	_, err = admin.Exec(ctx, `ALTER DATABASE `+ident+` WITH ALLOW_CONNECTIONS true`)
	require.NoError(t, err)
}

// SyncWorker.Run rides out a database outage shorter than MaxOutage: every
// row is applied exactly once; a longer outage ends Run with the error.
func TestSyncWorkerRidesOutOutage(t *testing.T) {
	ctx := context.Background()
	pool, url := pgSetupURL(t)
	countedTable(t, pool, 3000)
	var once sync.Once
	outageDone := make(chan struct{})
	work := &countingWork{name: "count"}
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(bbm.WorkFunc("count", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		if keyInt(b.Start) > 1000 {
			once.Do(func() {
				go func() {
					defer close(outageDone)
					outage(t, url, 2*time.Second, nil)
				}()
			})
		}
		return work.Do(ctx, db, b)
	})))
	register(t, w.Admin(), "count", "counted", "count", 100)
	require.NoError(t, w.Run(ctx))
	<-outageDone
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM counted WHERE n <> 1`), "rows not applied exactly once")
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "count").Status)

	// Too long an outage: Run gives up with the cause.
	itemsTable(t, pool, "items", 300)
	opts := fastOptions()
	opts.MaxOutage = 300 * time.Millisecond
	w2 := bbm.NewSyncWorker(pool, opts)
	longDone, began := make(chan struct{}), make(chan struct{})
	require.NoError(t, w2.Register(bbm.WorkFunc("fill", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		go func() {
			defer close(longDone)
			outage(t, url, 3*time.Second, began)
		}()
		select { // once the outage has begun this job's commit fails
		case <-began:
		case <-ctx.Done():
			return ctx.Err()
		}
		return fillWork("x").Do(ctx, db, b)
	})))
	register(t, w2.Admin(), "m", "items", "fill", 300)
	err := w2.Run(ctx)
	require.ErrorContains(t, err, "MaxOutage")
	<-longDone
}
