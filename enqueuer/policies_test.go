package enqueuer_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// eachStore runs f on the in-memory store and on Postgres (with a pglease
// locker on the same database); locker is nil for the in-memory variant.
func eachStore(t *testing.T, f func(t *testing.T, store enqueuer.Store, locker lease.Locker)) {
	t.Run("Memory", func(t *testing.T) {
		f(t, enqueuertest.NewStore(enqueuertest.StoreOptions{}), nil)
	})
	t.Run("Postgres", func(t *testing.T) {
		db := openDB(t)
		f(t, newPostgresStore(t, db), postgresLocker(t, db))
	})
}

// A filter defers, it does not skip: the repositories it rules out stay
// waiting, later runs pass over them without asking again, and they are
// looked at again when the filter's key changes or an administrator asks.
func TestDeferKeepsRepositoriesWaiting(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		addNew(t, e.store, "free/r", 3)
		addNew(t, e.store, "paid/r", 2)
		var (
			asked atomic.Int64
			key   atomic.Value
			tiers atomic.Value // the tiers being migrated
		)
		key.Store("tiers=paid")
		tiers.Store("paid/")
		cfg := enqueuer.Config{
			Capacity: capacity(10), Locker: locker,
			Defer: func(_ context.Context, r enqueuer.Repository) string {
				asked.Add(1)
				for _, t := range strings.Split(tiers.Load().(string), ",") {
					if strings.HasPrefix(r.Path, t) {
						return ""
					}
				}
				return "not_in_plan"
			},
			DeferKey: func(context.Context) string { return key.Load().(string) },
		}
		enq := e.enqueuer(t, cfg)
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, rep.Count(enqueuer.ImportNext))
		require.Equal(t, 3, rep.Deferred)
		require.Empty(t, rep.Skipped)
		for i := range 3 {
			r := get(t, e.store, "free/r-"+string(rune('0'+i)))
			require.Equal(t, enqueuer.StateDefault, r.State)
			require.Equal(t, "not_in_plan", r.DeferReason)
			require.Equal(t, "tiers=paid", r.DeferKey)
		}
		c, err := e.store.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, c.Deferred)
		require.Zero(t, c.Waiting())

		// Later runs with the same rules do not ask about them again.
		asked.Store(0)
		rep, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Zero(t, asked.Load())
		require.Empty(t, rep.Started)

		// The rules change: the deferred repositories are looked at again.
		tiers.Store("paid/,free/")
		key.Store("tiers=paid,free")
		rep, err = enq.Run(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 3, asked.Load())
		require.Equal(t, 3, rep.Count(enqueuer.ImportNext))
		require.Equal(t, 5, counts(t, e.store)[enqueuer.StatePreImporting])

		// An administrator's Reconsider clears deferrals whatever the key.
		addNew(t, e.store, "other/r", 1)
		tiers.Store("nothing/")
		_, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, "not_in_plan", get(t, e.store, "other/r-0").DeferReason)
		n, err := enq.Reconsider(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		r := get(t, e.store, "other/r-0")
		require.Empty(t, r.DeferReason)
		require.Equal(t, enqueuer.StateDefault, r.State)
	})
}

// Before an aborted repository is retried, the registry's status decides:
// finished → moved on; still running → back to that pass, waiting; failed,
// cancelled, unknown or unreadable → retried from the pre-import; 404 →
// skipped; native → skipped.
func TestReconcileBeforeRetry(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		cases := []struct {
			name      string
			status    enqueuer.RegistryStatus
			statusErr error
			want      enqueuer.State
			retried   bool   // a new pre-import was started
			skip      string // skip reason
		}{
			{name: "pre-done", status: enqueuer.StatusPreImportComplete, want: enqueuer.StateImporting}, // final import follows at once
			{name: "done", status: enqueuer.StatusImportComplete, want: enqueuer.StateImportDone},
			{name: "pre-running", status: enqueuer.StatusPreImportInProgress, want: enqueuer.StatePreImporting},
			{name: "running", status: enqueuer.StatusImportInProgress, want: enqueuer.StateImporting},
			{name: "pre-failed", status: enqueuer.StatusPreImportFailed, want: enqueuer.StatePreImporting, retried: true},
			{name: "canceled", status: enqueuer.StatusImportCanceled, want: enqueuer.StatePreImporting, retried: true},
			{name: "unknown", status: enqueuer.StatusUnknown, want: enqueuer.StatePreImporting, retried: true},
			{name: "unreadable", statusErr: &enqueuer.RegistryError{Op: "status", StatusCode: 500, Err: enqueuer.ErrRegistryUnavailable},
				want: enqueuer.StatePreImporting, retried: true},
			{name: "gone", statusErr: &enqueuer.RegistryError{Op: "status", StatusCode: 404, Err: enqueuer.ErrRegistryNotFound},
				want: enqueuer.StateImportSkipped, skip: enqueuer.SkipNotFound},
			{name: "native", status: enqueuer.StatusNative, want: enqueuer.StateImportSkipped, skip: enqueuer.SkipNative},
		}
		for _, tc := range cases {
			addAborted(t, e.store, "g/"+tc.name, 1, 0)
			path := "g/" + tc.name + "-0"
			switch {
			case tc.statusErr != nil:
				e.reg.Fail(enqueuertest.OpStatus, path, tc.statusErr)
			case tc.status == enqueuer.StatusPreImportComplete:
				// The registry's fake needs a real pre-import to allow the final one.
				require.NoError(t, e.reg.StartPreImport(ctx, path))
				e.reg.Complete(path)
			default:
				e.reg.SetStatus(path, tc.status)
			}
		}
		var reconciled []enqueuer.ReconcileEvent
		var mu sync.Mutex
		obs := enqueuer.ObserverFuncs{OnReconciled: func(_ context.Context, ev enqueuer.ReconcileEvent) {
			mu.Lock()
			defer mu.Unlock()
			reconciled = append(reconciled, ev)
		}}
		rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(20), Locker: locker, Observer: obs}).Run(ctx)
		require.NoError(t, err)
		require.Len(t, reconciled, len(cases))
		for _, tc := range cases {
			path := "g/" + tc.name + "-0"
			r := get(t, e.store, path)
			require.Equal(t, tc.want, r.State, tc.name)
			require.Equal(t, tc.skip, r.SkipReason, tc.name)
			wantRetries := 0
			if tc.retried {
				wantRetries = 1
			}
			require.Equal(t, wantRetries, r.RetryCount, tc.name)
			require.Equal(t, wantRetries, e.reg.Calls(enqueuertest.OpPreImport, path)-boolInt(tc.status == enqueuer.StatusPreImportComplete), tc.name)
		}
		require.Equal(t, 4, rep.Count(enqueuer.ImportRetry))
		require.Len(t, rep.Reconciled, 4)
		require.Len(t, rep.Skipped, 2)
		require.Equal(t, 1, rep.Count(enqueuer.ImportFinal), "the reconciled pre-import goes on to its final import")
		require.Empty(t, rep.Aborted)
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A 404 from the registry is a skip reason: the repository is not
// aborted, so it is not retried in a loop.
func TestNotFoundAtStartSkips(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		addNew(t, e.store, "g/r", 3)
		notFound := &enqueuer.RegistryError{Op: "pre-import", StatusCode: 404, Err: enqueuer.ErrRegistryNotFound}
		e.reg.Fail(enqueuertest.OpPreImport, "g/r-1", notFound)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker})
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Len(t, rep.Started, 2)
		require.Empty(t, rep.Aborted)
		r := get(t, e.store, "g/r-1")
		require.Equal(t, enqueuer.StateImportSkipped, r.State)
		require.Equal(t, enqueuer.SkipNotFound, r.SkipReason)

		// The same for a final import.
		p := get(t, e.store, "g/r-0")
		e.reg.Complete(p.Path)
		transition(t, e.store, p, enqueuer.EventFinishPreImport, "")
		e.reg.Fail(enqueuertest.OpImport, p.Path, notFound)
		rep, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Empty(t, rep.Aborted)
		r = get(t, e.store, p.Path)
		require.Equal(t, enqueuer.StateImportSkipped, r.State)
		require.Equal(t, enqueuer.SkipNotFound, r.SkipReason)
		_, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, e.reg.Calls(enqueuertest.OpPreImport, "g/r-1"), "never asked again")
	})
}

// A 425 (the registry is not ready: its pre-import still runs, or the
// outcome of the previous run is still on its way) is nobody's fault: the
// claim is put back, the run ends without aborting anything, and the
// next run starts the import. Aborting would send the repository through
// reconcile and a second set of transitions for a delay of milliseconds.
func TestTooEarlyPutsBackWithoutAborting(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		addNew(t, e.store, "g/r", 2)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker})
		_, err := enq.Run(ctx)
		require.NoError(t, err)
		// The notification overtook the registry's own bookkeeping: the
		// enqueuer has it pre-imported, the registry still runs it.
		p := transition(t, e.store, get(t, e.store, "g/r-0"), enqueuer.EventFinishPreImport, "")
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, enqueuer.StopTooEarly, rep.Stopped)
		require.Empty(t, rep.Aborted)
		r := get(t, e.store, p.Path)
		require.Equal(t, enqueuer.StatePreImportDone, r.State)
		require.Equal(t, p.Version+2, r.Version, "claimed and put back, nothing else")
		require.Empty(t, r.AbortReason)
		require.Zero(t, r.RetryCount)

		e.reg.Complete(p.Path)
		rep, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{p.Path}, startedPaths(rep))
		require.Equal(t, enqueuer.StateImporting, get(t, e.store, p.Path).State)
	})
}

// The stale guard looks at imports in their pass longer than StaleAfter;
// it cancels only those past their timeout, lets running ones within it
// be, moves finished ones on, skips vanished ones, and aborts the rest.
func TestStaleGuard(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(24 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		at := func(ago time.Duration) time.Time { return now.Add(-ago) }
		move := func(path string, ev enqueuer.Event, when time.Time) {
			r := get(t, e.store, path)
			_, err := e.store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: ev, At: when})
			require.NoError(t, err)
		}
		addNew(t, e.store, "g/r", 8)
		// r-0: pre-importing for 31 min, still running at the registry: cancelled, aborted.
		require.NoError(t, e.reg.StartPreImport(ctx, "g/r-0"))
		move("g/r-0", enqueuer.EventStartPreImport, at(31*time.Minute))
		// r-1: pre-importing for 29 min and running: within its timeout, left alone.
		require.NoError(t, e.reg.StartPreImport(ctx, "g/r-1"))
		move("g/r-1", enqueuer.EventStartPreImport, at(29*time.Minute))
		// r-2: importing for 11 min, but the registry finished (lost notification).
		require.NoError(t, e.reg.StartPreImport(ctx, "g/r-2"))
		e.reg.Complete("g/r-2")
		require.NoError(t, e.reg.StartImport(ctx, "g/r-2"))
		e.reg.Complete("g/r-2")
		move("g/r-2", enqueuer.EventStartPreImport, at(time.Hour))
		move("g/r-2", enqueuer.EventFinishPreImport, at(time.Hour))
		move("g/r-2", enqueuer.EventStartImport, at(11*time.Minute))
		// r-3: importing for 11 min, the registry cannot be asked: left alone.
		move("g/r-3", enqueuer.EventStartPreImport, at(time.Hour))
		move("g/r-3", enqueuer.EventFinishPreImport, at(time.Hour))
		move("g/r-3", enqueuer.EventStartImport, at(11*time.Minute))
		e.reg.Fail(enqueuertest.OpStatus, "g/r-3", &enqueuer.RegistryError{Op: "status", Err: enqueuer.ErrRegistryUnavailable})
		// r-4: pre-importing for 2 hours, not started at the registry: aborted, nothing to cancel.
		move("g/r-4", enqueuer.EventStartPreImport, at(2*time.Hour))
		// r-5: pre-importing for 10 min, the registry says failed: aborted.
		move("g/r-5", enqueuer.EventStartPreImport, at(10*time.Minute))
		e.reg.SetStatus("g/r-5", enqueuer.StatusPreImportFailed)
		// r-6: pre-importing for an hour, unknown to the registry (404): skipped.
		move("g/r-6", enqueuer.EventStartPreImport, at(time.Hour))
		e.reg.Fail(enqueuertest.OpStatus, "g/r-6", &enqueuer.RegistryError{Op: "status", StatusCode: 404, Err: enqueuer.ErrRegistryNotFound})
		// r-7: pre-importing for 2 min: not stale yet, the registry is not even asked.
		move("g/r-7", enqueuer.EventStartPreImport, at(2*time.Minute))

		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(0), Locker: locker, Clock: func() time.Time { return now }})
		rep, err := enq.Run(ctx)
		require.NoError(t, err)

		r0 := get(t, e.store, "g/r-0")
		require.Equal(t, enqueuer.StateImportAborted, r0.State)
		require.Contains(t, r0.AbortReason, "canceled: pre_importing for more than 30m0s")
		require.Equal(t, 1, e.reg.Calls(enqueuertest.OpCancel, "g/r-0"))
		st, err := e.reg.ImportStatus(ctx, "g/r-0")
		require.NoError(t, err)
		require.Equal(t, enqueuer.StatusPreImportCanceled, st.Status)
		require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, "g/r-1").State)
		require.Zero(t, e.reg.Calls(enqueuertest.OpCancel, "g/r-1"))
		require.Equal(t, enqueuer.StateImportDone, get(t, e.store, "g/r-2").State)
		require.Equal(t, enqueuer.StateImporting, get(t, e.store, "g/r-3").State)
		require.Equal(t, enqueuer.StateImportAborted, get(t, e.store, "g/r-4").State)
		require.Zero(t, e.reg.Calls(enqueuertest.OpCancel, "g/r-4"), "nothing to cancel")
		require.Equal(t, enqueuer.StateImportAborted, get(t, e.store, "g/r-5").State)
		r6 := get(t, e.store, "g/r-6")
		require.Equal(t, enqueuer.StateImportSkipped, r6.State)
		require.Equal(t, enqueuer.SkipNotFound, r6.SkipReason)
		require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, "g/r-7").State)
		require.Zero(t, e.reg.Calls(enqueuertest.OpStatus, "g/r-7"))
		require.Len(t, rep.Aborted, 3)
		require.Len(t, rep.Finished, 1)
		require.Len(t, rep.Skipped, 1)

		// Timeouts are configurable; a run within StaleCheckInterval of
		// the last check does not look again.
		enq = e.enqueuer(t, enqueuer.Config{Capacity: capacity(0), Locker: locker, Clock: func() time.Time { return now }, PreImportTimeout: 10 * time.Minute})
		_, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, enqueuer.StateImportAborted, get(t, e.store, "g/r-1").State)
		require.Equal(t, 1, e.reg.Calls(enqueuertest.OpCancel, "g/r-1"))
		calls := e.reg.Calls(enqueuertest.OpStatus, "")
		_, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, calls, e.reg.Calls(enqueuertest.OpStatus, ""), "the stale guard ran again within a minute")
	})
}

// A cancelled import of a repository near its retry limit is skipped as
// migration_canceled: it is not retried blindly. StaleBatch bounds the
// window one run looks at.
func TestStaleCancelSkipsNearRetryLimitAndWindowIsBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(24 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		repos := addAborted(t, e.store, "g/r", 5, 2) // retried twice: MaxRetries 3 - 1
		for i, r := range repos {
			r = transition(t, e.store, r, enqueuer.EventRetry, "")
			require.NoError(t, e.reg.StartPreImport(ctx, r.Path))
			_, err := e.store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventAbort, Reason: "x", At: now.Add(-2 * time.Hour)})
			require.NoError(t, err)
			r = get(t, e.store, r.Path)
			_, err = e.store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventResumePreImport,
				At: now.Add(-time.Hour).Add(time.Duration(i) * time.Minute)})
			require.NoError(t, err)
		}
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(0), Locker: locker, StaleBatch: 2, StaleCheckInterval: -1,
			Clock: func() time.Time { return now }})
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Len(t, rep.Skipped, 2, "a window of two")
		for _, r := range repos[:2] {
			got := get(t, e.store, r.Path)
			require.Equal(t, enqueuer.StateImportSkipped, got.State)
			require.Equal(t, enqueuer.SkipCanceled, got.SkipReason)
		}
		require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, repos[2].Path).State)
		require.Equal(t, 2, e.reg.Calls(enqueuertest.OpStatus, ""))
		// The next run takes the next window; nothing cancelled is retried.
		rep, err = enq.Run(ctx)
		require.NoError(t, err)
		require.Len(t, rep.Skipped, 2)
		require.Empty(t, rep.Started)
	})
}

// MinStartInterval holds new pre-imports back until that long after the
// latest start, then lets one through; final imports are not held back.
func TestMinStartInterval(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		addNew(t, e.store, "g/r", 4)
		var now atomic.Int64
		now.Store(epoch.Add(time.Hour).UnixNano())
		clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
		for _, strategy := range []enqueuer.Strategy{enqueuer.ParallelLoop{}, enqueuer.Loop{}} {
			enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Locker: locker, Clock: clock, MinStartInterval: 10 * time.Minute, Strategy: strategy})
			rep, err := enq.Run(ctx)
			require.NoError(t, err)
			require.Len(t, rep.Started, 1, "%T", strategy)
			require.Equal(t, enqueuer.StopThrottled, rep.Stopped)
			now.Add(int64(9 * time.Minute))
			rep, err = enq.Run(ctx)
			require.NoError(t, err)
			require.Empty(t, rep.Started)
			require.Equal(t, enqueuer.StopThrottled, rep.Stopped)
			now.Add(int64(time.Minute))
		}
		require.Equal(t, 2, counts(t, e.store)[enqueuer.StatePreImporting])

		// A pre-import that finished gets its final import at once.
		r := get(t, e.store, "g/r-0")
		e.reg.Complete(r.Path)
		transition(t, e.store, r, enqueuer.EventFinishPreImport, "")
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Locker: locker, Clock: clock, MinStartInterval: time.Hour})
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Count(enqueuer.ImportFinal))
		require.Zero(t, rep.Count(enqueuer.ImportNext))
	})
}

// OrderSmallest starts the repositories with the fewest tags first.
func TestOrderSmallestFirst(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		for i, tags := range []int{500, 3, 40, 1, 7000} {
			_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "g/r-" + string(rune('a'+i)), TagCount: tags, CreatedAt: epoch.Add(time.Duration(i) * time.Minute)})
			require.NoError(t, err)
		}
		rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(3), Locker: locker, Order: enqueuer.OrderSmallest, Strategy: enqueuer.Loop{}}).Run(ctx)
		require.NoError(t, err)
		var got []string
		for _, s := range rep.Started {
			got = append(got, s.Repository.Path)
		}
		require.Equal(t, []string{"g/r-d", "g/r-b", "g/r-c"}, got)
	})
}

// OrderPriority starts by the host's priority (here the plan tier of the
// namespace), then oldest first; a namespace's new plan takes effect for
// the repositories still waiting.
func TestOrderPriorityPlanTierThenAge(t *testing.T) {
	const free, premium, ultimate = 0, 10, 20
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		for i, r := range []struct {
			path string
			tier int
		}{
			{"free/a", free}, {"gold/a", ultimate}, {"silver/a", premium}, {"free/b", free},
			{"gold/b", ultimate}, {"silver/b", premium}, {"upgraded/a", free}, {"upgraded/b", free},
		} {
			_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: r.path, Priority: r.tier, CreatedAt: epoch.Add(time.Duration(i) * time.Minute)})
			require.NoError(t, err)
		}
		// The upgraded namespace moves to premium before anything starts.
		n, err := e.store.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "upgraded/", Priority: premium})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker, Order: enqueuer.OrderPriority, Strategy: enqueuer.Loop{}})
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"gold/a", "gold/b", "silver/a", "silver/b", "upgraded/a"}, startedPaths(rep))

		// The forecast schedules the waiting ones in the same order.
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, 3, f.Counts.Waiting())

		// A custom order of the host's own keys: smallest priority first
		// (reversed on purpose), then newest.
		cfg := enqueuer.Config{Store: e.store, Registry: e.reg, Locker: e.locker, Capacity: capacity(1), Order: enqueuer.OrderBy("priority", "-created_at")}
		_, err = enqueuer.New(cfg)
		require.NoError(t, err)
		for _, bad := range []enqueuer.Order{"random", "priority,priority", "-", "priority;DROP TABLE x", "tag_count,", "defer_reason"} {
			cfg.Order = bad
			_, err = enqueuer.New(cfg)
			require.ErrorIs(t, err, enqueuer.ErrConfig, "order %q", bad)
			require.ErrorIs(t, err, enqueuer.ErrInvalidOrder, "order %q", bad)
		}
	})
}

// An administrator resets skipped repositories by path, reason or prefix;
// they start again.
func TestResetSkipped(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		skip := func(path, reason string) {
			r, err := e.store.Add(ctx, enqueuer.NewRepository{Path: path, TagCount: 5, CreatedAt: epoch})
			require.NoError(t, err)
			r = transition(t, e.store, r, enqueuer.EventStartPreImport, "")
			r = transition(t, e.store, r, enqueuer.EventAbort, "x")
			r = transition(t, e.store, r, enqueuer.EventRetry, "")
			transition(t, e.store, r, enqueuer.EventSkip, reason)
		}
		skip("a/one", enqueuer.SkipTooManyTags)
		skip("a/two", enqueuer.SkipTooManyTags)
		skip("b/one", enqueuer.SkipTooManyTags)
		skip("b/two", enqueuer.SkipNotFound)
		skip("c/one", enqueuer.SkipCanceled)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Locker: locker})

		n, err := enq.ResetSkipped(ctx, enqueuer.ResetOptions{Reason: enqueuer.SkipTooManyTags, PathPrefix: "a/"})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		r := get(t, e.store, "a/one")
		require.Equal(t, enqueuer.StateDefault, r.State)
		require.Zero(t, r.RetryCount)
		require.Empty(t, r.SkipReason)
		n, err = enq.ResetSkipped(ctx, enqueuer.ResetOptions{Paths: []string{"b/two", "a/one", "c/one"}, Reason: enqueuer.SkipNotFound})
		require.NoError(t, err)
		require.Equal(t, 1, n, "only b/two has that reason and is skipped")
		_, err = enq.ResetSkipped(ctx, enqueuer.ResetOptions{Paths: []string{"no/such"}})
		require.ErrorIs(t, err, enqueuer.ErrNotFound)
		n, err = enq.ResetSkipped(ctx, enqueuer.ResetOptions{})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Zero(t, counts(t, e.store)[enqueuer.StateImportSkipped])

		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, rep.Count(enqueuer.ImportNext), "reset repositories start over as new ones")
	})
}

// ForceCancel cancels at the registry and skips for good; it refuses
// finished repositories and leaves the state alone when the registry
// cannot cancel.
func TestForceCancel(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		addNew(t, e.store, "g/r", 4)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(2), Locker: locker})
		_, err := enq.Run(ctx)
		require.NoError(t, err) // r-0 and r-1 pre-importing

		r, err := enq.ForceCancel(ctx, "g/r-0")
		require.NoError(t, err)
		require.Equal(t, enqueuer.StateImportSkipped, r.State)
		require.Equal(t, enqueuer.SkipForceCanceled, r.SkipReason)
		require.Equal(t, 1, e.reg.Calls(enqueuertest.OpCancel, "g/r-0"))
		st, err := e.reg.ImportStatus(ctx, "g/r-0")
		require.NoError(t, err)
		require.Equal(t, enqueuer.StatusPreImportCanceled, st.Status)

		r, err = enq.ForceCancel(ctx, "g/r-3") // waiting: nothing to cancel at the registry
		require.NoError(t, err)
		require.Equal(t, enqueuer.SkipForceCanceled, r.SkipReason)
		require.Zero(t, e.reg.Calls(enqueuertest.OpCancel, "g/r-3"))

		// r-2 pre-importing here, its pre-import just completed at the
		// registry (400 to a cancel, nothing in progress): skipped all
		// the same.
		enq2 := e.enqueuer(t, enqueuer.Config{Capacity: capacity(3), Locker: locker})
		_, err = enq2.Run(ctx)
		require.NoError(t, err)
		e.reg.Complete("g/r-2")
		r, err = enq.ForceCancel(ctx, "g/r-2")
		require.NoError(t, err)
		require.Equal(t, enqueuer.SkipForceCanceled, r.SkipReason)
		require.Equal(t, 1, e.reg.Calls(enqueuertest.OpCancel, "g/r-2"))

		e.reg.Fail(enqueuertest.OpCancel, "g/r-1", &enqueuer.RegistryError{Op: "cancel", Err: enqueuer.ErrRegistryUnavailable})
		_, err = enq.ForceCancel(ctx, "g/r-1")
		require.ErrorIs(t, err, enqueuer.ErrRegistryUnavailable)
		require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, "g/r-1").State)

		_, err = enq.ForceCancel(ctx, "g/r-0")
		require.ErrorIs(t, err, enqueuer.ErrInvalidTransition, "already skipped")
		_, err = enq.ForceCancel(ctx, "g/none")
		require.ErrorIs(t, err, enqueuer.ErrNotFound)

		// The cancelled ones are not retried; nothing is left to start.
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Empty(t, startedPaths(rep))
	})
}

func startedPaths(rep enqueuer.Report) []string {
	var out []string
	for _, s := range rep.Started {
		out = append(out, s.Repository.Path)
	}
	return out
}

// A stuck holder blocks every run until an administrator releases the
// lease.
func TestReleaseStuckLease(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		if locker == nil {
			locker = e.locker
		}
		addNew(t, e.store, "g/r", 2)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(2), Locker: locker})
		stuck, err := locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Hour)
		require.NoError(t, err)
		_, err = enq.Run(ctx)
		require.ErrorIs(t, err, lease.ErrHeld)

		held, err := enq.ReleaseLease(ctx)
		require.NoError(t, err)
		require.True(t, held)
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Len(t, rep.Started, 2)
		require.ErrorIs(t, stuck.Renew(ctx), lease.ErrLost, "the stuck holder lost it")
		held, err = enq.ReleaseLease(ctx)
		require.NoError(t, err)
		require.False(t, held)

		// A locker that cannot break leases says so.
		plain := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), Locker: noBreak{locker}})
		_, err = plain.ReleaseLease(ctx)
		require.ErrorIs(t, err, lease.ErrInvalid)
	})
}

type noBreak struct{ lease.Locker }

// The default lease ttl is seconds, and a run longer than the ttl keeps
// its lease by renewal.
func TestLeaseRenewedDuringLongRun(t *testing.T) {
	require.LessOrEqual(t, enqueuer.DefaultLeaseTTL, time.Minute)
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		if locker == nil {
			locker = leasetest.NewLocker(leasetest.Options{})
		}
		e := newEnv(t, store, enqueuertest.RegistryOptions{MinLatency: 2 * time.Second})
		addNew(t, e.store, "g/r", 3)
		// Renewals every 400ms, each allowed 400ms: generous on a loaded machine.
		rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(3), Locker: locker, LeaseTTL: 1200 * time.Millisecond}).Run(context.Background())
		require.NoError(t, err, "2s starts under a 1.2s ttl")
		require.Len(t, rep.Started, 3)
	})
}

// ParallelLoop does not wait for its slowest start: a slot freed while a
// slow start is still in flight is refilled at once when the run is woken.
func TestParallelLoopRefillsWithoutWaitingForSlowStart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 4)
	slowDone := make(chan struct{})
	slow := &slowRegistry{RegistryClient: e.reg, slowPath: "g/r-0", release: slowDone, started: make(chan string, 10)}
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(2), Registry: slow})
	var (
		rep enqueuer.Report
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep, err = enq.Run(ctx)
	}()
	// r-1 starts quickly; r-0 is slow. r-1's import finishes and frees
	// its slot while r-0's start is still in flight.
	require.Equal(t, "g/r-1", <-slow.started)
	transition(t, e.store, get(t, e.store, "g/r-1"), enqueuer.EventSkip, "cancelled elsewhere")
	enq.Wake()
	select {
	case p := <-slow.started:
		require.Equal(t, "g/r-2", p, "the freed slot was refilled while the slow start was in flight")
	case <-time.After(10 * time.Second):
		t.Fatal("the freed slot was not refilled before the slow start returned")
	}
	close(slowDone)
	<-done
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopCapacityFull, rep.Stopped)
	require.ElementsMatch(t, []string{"g/r-0", "g/r-1", "g/r-2"}, startedPaths(rep))
}

// slowRegistry holds the pre-import of slowPath until release is closed
// and reports every start it let through.
type slowRegistry struct {
	enqueuer.RegistryClient
	slowPath string
	release  <-chan struct{}
	started  chan string
}

func (s *slowRegistry) StartPreImport(ctx context.Context, path string) error {
	if path == s.slowPath {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := s.RegistryClient.StartPreImport(ctx, path)
	if err == nil && path != s.slowPath {
		s.started <- path
	}
	return err
}
