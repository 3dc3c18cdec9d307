package enqueuer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
)

// countingRunner counts the runs in progress at once around a Runnable.
type countingRunner struct {
	r                    enqueuer.Runnable
	inFlight, maxSeen    atomic.Int64
	runs, held, failures atomic.Int64
}

func (c *countingRunner) Run(ctx context.Context) (enqueuer.Report, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxSeen.Load()
		if n <= m || c.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	rep, err := c.r.Run(ctx)
	c.runs.Add(1)
	switch {
	case err == nil:
	case errors.Is(err, lease.ErrHeld):
		c.held.Add(1)
	default:
		c.failures.Add(1)
	}
	return rep, err
}

// settle waits for the goroutine count to come back to at most n.
func settle(n int) int {
	got := runtime.NumGoroutine()
	for i := 0; i < 100 && got > n; i++ {
		time.Sleep(20 * time.Millisecond)
		got = runtime.NumGoroutine()
	}
	return got
}

// 1,000 notifications within a second, each applied by the real Handler:
// the Scheduler turns them into runs one at a time with at most one
// pending, and its goroutines end with it.
func TestSchedulerCoalescesNotifications(t *testing.T) {
	const notifications = 1000
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{MinLatency: 5 * time.Millisecond, MaxLatency: 20 * time.Millisecond})
	repos := addNew(t, e.store, "g/r", notifications)
	for _, r := range repos {
		transition(t, e.store, r, enqueuer.EventStartPreImport, "")
		e.reg.SetStatus(r.Path, enqueuer.StatusPreImportInProgress)
	}
	before := runtime.NumGoroutine()

	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(notifications)})
	runner := &countingRunner{r: enq}
	sched, err := enqueuer.NewScheduler(runner, enqueuer.SchedulerOptions{Every: time.Hour, Logger: quiet})
	require.NoError(t, err)
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: e.store, Secret: secret, Logger: quiet, OnChange: sched.OnChange})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- sched.Run(runCtx) }()

	// Eight senders, each pausing 7ms between notifications: the 1,000
	// arrive over about a second while runs go on.
	began := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= notifications {
					return
				}
				time.Sleep(7 * time.Millisecond)
				e.reg.Complete(repos[i].Path)
				req := httptest.NewRequest(http.MethodPut, statusURL(repos[i].Path), strings.NewReader(`{"status":"pre_import_complete"}`))
				req.Header.Set("Authorization", "Bearer "+secret)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Errorf("notification %d: %d %s", i, rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	burst := time.Since(began)
	// Every pre-import completed: the runs start the final imports.
	require.Eventually(t, func() bool {
		n, err := e.store.Count(ctx)
		return err == nil && n.States[enqueuer.StateImporting] == notifications
	}, 30*time.Second, 10*time.Millisecond)
	// The kicks folded into the pending run are not lost: it runs.
	require.Eventually(t, func() bool { return sched.Stats().Runs >= 2 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, sched.Shutdown(ctx))
	require.NoError(t, <-ran)
	cancel()

	st := sched.Stats()
	t.Logf("%d notifications in %s: %d kicks, %d coalesced, %d runs, %d held, max %d in flight",
		notifications, burst.Round(time.Millisecond), st.Kicks, st.Coalesced, st.Runs, st.Held, runner.maxSeen.Load())
	// No bound on the burst's duration (no timing thresholds in tests): a
	// loaded machine spreads the kicks out, but every run still waits
	// 5-20 ms for each start it makes, so they keep coalescing.
	require.EqualValues(t, notifications, st.Kicks)
	require.EqualValues(t, 1, runner.maxSeen.Load(), "at most one run in flight")
	require.EqualValues(t, 1, st.MaxInFlight)
	// Every kick either made a pending run or was folded into one: runs
	// beyond the first are at most the kicks that were not coalesced.
	require.LessOrEqual(t, st.Runs, st.Kicks-st.Coalesced+1)
	require.Less(t, st.Runs, int64(notifications)/2, "kicks coalesce")
	require.Zero(t, st.Held, "one scheduler never competes with itself for the lease")
	require.Zero(t, runner.failures.Load())
	require.LessOrEqual(t, settle(before), before, "goroutines back to the baseline")
}

// The old wiring for comparison: a goroutine per notification. Most runs
// find the lease held and are dropped. Reported, not asserted beyond the
// obvious.
func TestGoroutinePerNotificationBaseline(t *testing.T) {
	const notifications = 200
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{MinLatency: 5 * time.Millisecond, MaxLatency: 20 * time.Millisecond})
	addNew(t, e.store, "g/r", notifications)
	runner := &countingRunner{r: e.enqueuer(t, enqueuer.Config{Capacity: capacity(notifications)})}
	var wg sync.WaitGroup
	for range notifications {
		wg.Go(func() { _, _ = runner.Run(ctx) })
	}
	wg.Wait()
	t.Logf("%d goroutines: %d runs, %d found the lease held, max %d in flight", notifications, runner.runs.Load(), runner.held.Load(), runner.maxSeen.Load())
	require.Greater(t, runner.maxSeen.Load(), int64(1))
	require.Positive(t, runner.held.Load())
}

// A run that finds the lease held is retried once after RetryHeld; the
// tick and Shutdown work; Run refuses a second call.
func TestSchedulerRetriesHeldLeaseAndShutsDown(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 3)
	l, err := e.locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Minute)
	require.NoError(t, err)
	var runs []error
	var mu sync.Mutex
	sched, err := enqueuer.NewScheduler(e.enqueuer(t, enqueuer.Config{Capacity: capacity(3)}), enqueuer.SchedulerOptions{
		Every: time.Hour, RetryHeld: 50 * time.Millisecond, Logger: quiet,
		OnRun: func(_ context.Context, _ enqueuer.Report, err error) {
			mu.Lock()
			defer mu.Unlock()
			runs = append(runs, err)
		},
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	// The first run and its one retry find the lease held; then nothing
	// until a kick.
	require.Eventually(t, func() bool { return sched.Stats().Held == 2 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.EqualValues(t, 2, sched.Stats().Runs, "one retry only")
	require.NoError(t, l.Release(ctx))
	sched.Kick()
	require.Eventually(t, func() bool { return counts(t, e.store)[enqueuer.StatePreImporting] == 3 }, 5*time.Second, 5*time.Millisecond)
	require.ErrorContains(t, sched.Run(ctx), "twice")
	shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, sched.Shutdown(shutdownCtx))
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, 3)
	require.ErrorIs(t, runs[0], lease.ErrHeld)
	require.NoError(t, runs[2])

	// A cancelled context ends Run with its error.
	sched, err = enqueuer.NewScheduler(&countingRunner{r: e.enqueuer(t, enqueuer.Config{Capacity: capacity(3)})}, enqueuer.SchedulerOptions{Every: time.Millisecond})
	require.NoError(t, err)
	cctx, ccancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer ccancel()
	require.ErrorIs(t, sched.Run(cctx), context.DeadlineExceeded)
	_, err = enqueuer.NewScheduler(nil, enqueuer.SchedulerOptions{})
	require.ErrorIs(t, err, enqueuer.ErrConfig)
}
