package enqueuer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
)

// The seed's validation: capacity 4, two aborted and four new repositories.
// One run retries both aborted ones and starts the two oldest new ones.
func TestSeedExample(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strategy enqueuer.Strategy
	}{{"Loop", enqueuer.Loop{}}, {"ParallelLoop", enqueuer.ParallelLoop{}}} {
		t.Run(tc.name, func(t *testing.T) {
			testSeedExample(t, enqueuertest.NewStore(enqueuertest.StoreOptions{}), tc.strategy)
		})
	}
	t.Run("Postgres", func(t *testing.T) {
		testSeedExample(t, newPostgresStore(t, openDB(t)), enqueuer.Loop{})
	})
}

func testSeedExample(t *testing.T, store enqueuer.Store, strategy enqueuer.Strategy) {
	ctx := context.Background()
	e := newEnv(t, store, enqueuertest.RegistryOptions{})
	aborted := addAborted(t, e.store, "gitlab-org/gitlab-test/aborted", 2, 0)
	fresh := addNew(t, e.store, "gitlab-org/gitlab-test/test_image", 4)
	require.Equal(t, map[enqueuer.State]int{enqueuer.StateDefault: 4, enqueuer.StateImportAborted: 2}, counts(t, e.store))

	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(4), Strategy: strategy}).Run(ctx)
	require.NoError(t, err)
	require.Equal(t, map[enqueuer.State]int{enqueuer.StateDefault: 2, enqueuer.StatePreImporting: 4}, counts(t, e.store))
	require.Equal(t, 2, rep.Count(enqueuer.ImportRetry))
	require.Equal(t, 2, rep.Count(enqueuer.ImportNext))
	require.Equal(t, enqueuer.StopCapacityFull, rep.Stopped)

	for _, r := range aborted {
		got := get(t, e.store, r.Path)
		require.Equal(t, enqueuer.StatePreImporting, got.State)
		require.Equal(t, 1, got.RetryCount)
	}
	// The oldest new repositories went first; the two youngest wait.
	for i, r := range fresh {
		want := enqueuer.StatePreImporting
		if i >= 2 {
			want = enqueuer.StateDefault
		}
		require.Equal(t, want, get(t, e.store, r.Path).State, r.Path)
	}

	// One log line per start with the structured fields.
	lines := e.logs.lines(t, "enqueuer: import started")
	require.Len(t, lines, 4)
	types := map[string]int{}
	for _, l := range lines {
		types[l["import_type"].(string)]++
		require.Equal(t, "pre_importing", l["container_repository_migration_state"])
		require.NotZero(t, l["container_repository_id"])
		require.Contains(t, l["container_repository_path"], "gitlab-org/gitlab-test/")
	}
	require.Equal(t, map[string]int{"retry": 2, "next": 2}, types)
	require.Equal(t, 4, len(e.reg.Starts()))
}

func TestOnceStartsOneRepositoryPerRun(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 5)
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(4), Strategy: enqueuer.Once{}})
	for i := 1; i <= 5; i++ {
		rep, err := enq.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, enqueuer.StopOnce, rep.Stopped)
		want := min(i, 4)
		require.Equal(t, want, counts(t, e.store)[enqueuer.StatePreImporting], "after run %d", i)
	}
}

// Fifty overlapping triggers with a slow registry: one run fills the
// capacity, the others find the lease held, nothing is started twice.
func TestConcurrentRunsFillCapacityExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strategy enqueuer.Strategy
	}{{"ParallelLoop", enqueuer.ParallelLoop{}}, {"Loop", enqueuer.Loop{}}} {
		t.Run(tc.name, func(t *testing.T) {
			testConcurrentRuns(t, enqueuertest.NewStore(enqueuertest.StoreOptions{}), nil, tc.strategy)
		})
	}
	t.Run("Postgres", func(t *testing.T) {
		db := openDB(t)
		testConcurrentRuns(t, newPostgresStore(t, db), postgresLocker(t, db), enqueuer.ParallelLoop{})
	})
}

// gatedRegistry holds the first start until the other runs have returned,
// so that every one of them really overlaps the winner.
type gatedRegistry struct {
	enqueuer.RegistryClient
	once sync.Once
	gate <-chan struct{}
}

func (g *gatedRegistry) StartPreImport(ctx context.Context, path string) error {
	g.once.Do(func() {
		select {
		case <-g.gate:
		case <-time.After(30 * time.Second):
		}
	})
	return g.RegistryClient.StartPreImport(ctx, path)
}

func testConcurrentRuns(t *testing.T, store enqueuer.Store, locker lease.Locker, strategy enqueuer.Strategy) {
	const runs, capa, repos = 50, 25, 60
	e := newEnv(t, store, enqueuertest.RegistryOptions{MinLatency: 50 * time.Millisecond, MaxLatency: 200 * time.Millisecond})
	addNew(t, e.store, "group/image", repos)
	gate := make(chan struct{})
	cfg := enqueuer.Config{
		Capacity: capacity(capa), Strategy: strategy, Locker: locker,
		Registry: &gatedRegistry{RegistryClient: e.reg, gate: gate},
	}
	enq := e.enqueuer(t, cfg)

	var (
		wg       sync.WaitGroup
		held     atomic.Int64
		returned atomic.Int64
		mu       sync.Mutex
		reports  []enqueuer.Report
		others   []error
	)
	start := make(chan struct{})
	for range runs {
		wg.Go(func() {
			<-start
			rep, err := enq.Run(context.Background())
			switch {
			case errors.Is(err, lease.ErrHeld):
				held.Add(1)
				require.Equal(t, enqueuer.StopLeaseHeld, rep.Stopped)
			case err != nil:
				mu.Lock()
				others = append(others, err)
				mu.Unlock()
			default:
				mu.Lock()
				reports = append(reports, rep)
				mu.Unlock()
			}
			if returned.Add(1) == runs-1 {
				close(gate)
			}
		})
	}
	close(start)
	wg.Wait()
	require.Empty(t, others)
	require.Len(t, reports, 1, "exactly one run holds the lease")
	require.EqualValues(t, runs-1, held.Load(), "the losers return ErrHeld")
	require.Len(t, reports[0].Started, capa)

	n, err := e.store.CountInProgress(context.Background())
	require.NoError(t, err)
	require.Equal(t, capa, n)
	seen := map[string]bool{}
	for _, s := range e.reg.Starts() {
		require.False(t, seen[s.Path], "%s started twice", s.Path)
		seen[s.Path] = true
		require.Equal(t, 1, e.reg.Calls(enqueuertest.OpPreImport, s.Path))
	}
	require.Len(t, seen, capa)
	require.Equal(t, capa, e.reg.Calls(enqueuertest.OpPreImport, ""), "no start was even attempted twice")

	// A second wave finds the capacity full and starts nothing.
	var wave sync.WaitGroup
	for range 10 {
		wave.Go(func() {
			rep, err := enq.Run(context.Background())
			if err == nil {
				require.Empty(t, rep.Started)
			} else {
				require.ErrorIs(t, err, lease.ErrHeld)
			}
		})
	}
	wave.Wait()
	require.Equal(t, capa, e.reg.Calls(enqueuertest.OpPreImport, ""))
}

func TestSelectionSkipsAndRetries(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	exhausted := addAborted(t, e.store, "g/exhausted", 1, 3)[0] // retried 3 times already
	retriable := addAborted(t, e.store, "g/retriable", 1, 2)[0]
	big, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "g/big", TagCount: 1000, CreatedAt: epoch})
	require.NoError(t, err)
	excluded, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "denied/x", CreatedAt: epoch})
	require.NoError(t, err)
	fresh := addNew(t, e.store, "g/fresh", 2)

	enq := e.enqueuer(t, enqueuer.Config{
		Capacity: capacity(10), MaxTagsCount: 100,
		Defer: func(_ context.Context, r enqueuer.Repository) string {
			if r.Path == "denied/x" {
				return "root_namespace_in_deny_list"
			}
			return ""
		},
	})
	rep, err := enq.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopNothingLeft, rep.Stopped)

	got := get(t, e.store, exhausted.Path)
	require.Equal(t, enqueuer.StateImportSkipped, got.State)
	require.Equal(t, enqueuer.SkipTooManyRetries, got.SkipReason)
	got = get(t, e.store, retriable.Path)
	require.Equal(t, enqueuer.StatePreImporting, got.State)
	require.Equal(t, 3, got.RetryCount)
	got = get(t, e.store, big.Path)
	require.Equal(t, enqueuer.StateImportSkipped, got.State)
	require.Equal(t, enqueuer.SkipTooManyTags, got.SkipReason)
	got = get(t, e.store, excluded.Path)
	require.Equal(t, enqueuer.StateDefault, got.State, "a filter defers, it does not skip")
	require.Equal(t, "root_namespace_in_deny_list", got.DeferReason)
	for _, r := range fresh {
		require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, r.Path).State)
	}
	require.Len(t, rep.Skipped, 2)
	require.Equal(t, 1, rep.Deferred)
	require.Equal(t, 1, rep.Count(enqueuer.ImportRetry))
	require.Equal(t, 2, rep.Count(enqueuer.ImportNext))

	skips := e.logs.lines(t, "enqueuer: repository skipped")
	require.Len(t, skips, 2)
	for _, l := range skips {
		require.Equal(t, "import_skipped", l["container_repository_migration_state"])
		require.NotEmpty(t, l["reason"])
		require.NotEmpty(t, l["import_type"])
		require.NotEmpty(t, l["container_repository_path"])
		require.NotZero(t, l["container_repository_id"])
	}
}

// With MaxRetries 0 the default applies; negative disables retries.
func TestNoRetries(t *testing.T) {
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	r := addAborted(t, e.store, "g/a", 1, 0)[0]
	_, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), MaxRetries: -1}).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, enqueuer.SkipTooManyRetries, get(t, e.store, r.Path).SkipReason)
}

// A 429 ends the run; the repository it refused, and those not yet
// asked, are back where they were, none marked failed.
func TestTooManyImportsStopsRunWithoutMarkingFailed(t *testing.T) {
	for _, strategy := range []enqueuer.Strategy{enqueuer.Loop{}, enqueuer.ParallelLoop{}} {
		ctx := context.Background()
		e := newEnv(t, nil, enqueuertest.RegistryOptions{MaxImports: 3})
		addAborted(t, e.store, "g/aborted", 1, 0)
		addNew(t, e.store, "g/r", 9)
		rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(8), Strategy: strategy}).Run(ctx)
		require.NoError(t, err, "%T", strategy)
		require.Equal(t, enqueuer.StopTooManyImports, rep.Stopped)
		require.Len(t, rep.Started, 3)
		require.Empty(t, rep.Aborted)
		c := counts(t, e.store)
		require.Equal(t, 3, c[enqueuer.StatePreImporting], "%T: %v", strategy, c)
		require.Zero(t, c[enqueuer.StateImportSkipped])
		// The aborted one goes first; if the registry refused it, it is
		// aborted still, with its retry count unchanged.
		a := get(t, e.store, "g/aborted-0")
		if a.State == enqueuer.StateImportAborted {
			require.Zero(t, a.RetryCount)
		}
		require.Equal(t, 10-3, c[enqueuer.StateDefault]+c[enqueuer.StateImportAborted])
	}
}

func TestRegistryUnavailableRevertsAndFails(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 3)
	e.reg.Fail(enqueuertest.OpPreImport, "g/r-1", &enqueuer.RegistryError{Op: "pre-import", Path: "g/r-1", Err: enqueuer.ErrRegistryUnavailable})
	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(3), Strategy: enqueuer.Loop{}}).Run(ctx)
	require.ErrorIs(t, err, enqueuer.ErrRegistryUnavailable)
	require.Equal(t, enqueuer.StopRegistryUnavailable, rep.Stopped)
	require.Len(t, rep.Started, 1)
	require.Equal(t, enqueuer.StateDefault, get(t, e.store, "g/r-1").State, "reverted, not failed")
	require.Equal(t, enqueuer.StateDefault, get(t, e.store, "g/r-2").State)
}

// A refusal that concerns the repository aborts it and the run goes on;
// a later run retries it.
func TestRepositoryRefusalAbortsAndLaterRetries(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 3)
	e.reg.Fail(enqueuertest.OpPreImport, "g/r-0", &enqueuer.RegistryError{Op: "pre-import", Path: "g/r-0", StatusCode: 400, Err: errors.New("bad request")})
	e.reg.SetStatus("g/r-2", enqueuer.StatusNative)
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5)})
	rep, err := enq.Run(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Started, 1)
	require.Len(t, rep.Aborted, 1)
	require.Len(t, rep.Skipped, 1)
	a := get(t, e.store, "g/r-0")
	require.Equal(t, enqueuer.StateImportAborted, a.State)
	require.Contains(t, a.AbortReason, "bad request")
	require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, "g/r-1").State)
	n := get(t, e.store, "g/r-2")
	require.Equal(t, enqueuer.StateImportSkipped, n.State)
	require.Equal(t, enqueuer.SkipNative, n.SkipReason)

	// The same run did not retry what it aborted; the next one does.
	require.Equal(t, 1, e.reg.Calls(enqueuertest.OpPreImport, "g/r-0"))
	rep, err = enq.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Count(enqueuer.ImportRetry))
	a = get(t, e.store, "g/r-0")
	require.Equal(t, enqueuer.StatePreImporting, a.State)
	require.Equal(t, 1, a.RetryCount)
}

func TestTooManyAbortsEndsRun(t *testing.T) {
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 10)
	for range 10 {
		e.reg.Fail(enqueuertest.OpPreImport, "", &enqueuer.RegistryError{Op: "pre-import", StatusCode: 400, Err: errors.New("bad request")})
	}
	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), MaxAbortsPerRun: 3, Strategy: enqueuer.Loop{}}).Run(context.Background())
	require.ErrorIs(t, err, enqueuer.ErrTooManyAborts)
	require.Equal(t, enqueuer.StopTooManyAborts, rep.Stopped)
	require.Len(t, rep.Aborted, 3)
	require.Equal(t, 7, counts(t, e.store)[enqueuer.StateDefault])
}

func TestFinalImportsStartWithoutTakingCapacity(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	repos := addNew(t, e.store, "g/r", 4)
	for _, r := range repos[:2] {
		require.NoError(t, e.reg.StartPreImport(ctx, r.Path))
		e.reg.Complete(r.Path)
		r = transition(t, e.store, r, enqueuer.EventStartPreImport, "")
		transition(t, e.store, r, enqueuer.EventFinishPreImport, "")
	}
	// Capacity 2 is full with the two pre-imported repositories: only
	// their final imports start.
	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(2), Strategy: enqueuer.Once{}}).Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Count(enqueuer.ImportFinal))
	require.Equal(t, 0, rep.Count(enqueuer.ImportNext))
	require.Equal(t, map[enqueuer.State]int{enqueuer.StateImporting: 2, enqueuer.StateDefault: 2}, counts(t, e.store))
	require.Equal(t, 2, e.reg.Calls(enqueuertest.OpImport, ""))
}

func TestFeatureFlag(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 5)
	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Enabled: func(context.Context) bool { return false }}).Run(ctx)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopDisabled, rep.Stopped)
	require.Zero(t, e.reg.Calls(enqueuertest.OpPreImport, ""))

	// Switched off while a loop runs: the loop stops at its next check.
	var checks atomic.Int64
	flag := func(context.Context) bool { return checks.Add(1) <= 3 }
	rep, err = e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Enabled: flag, Strategy: enqueuer.Loop{}}).Run(ctx)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopDisabled, rep.Stopped)
	require.Len(t, rep.Started, 2, "Run's check, then two loop rounds")
}

func TestLoopDeadline(t *testing.T) {
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 10)
	// Every reading of the clock moves it on by a minute.
	var now atomic.Int64
	clock := func() time.Time { return epoch.Add(time.Duration(now.Add(1)) * time.Minute) }
	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Clock: clock, Strategy: enqueuer.Loop{Deadline: 5 * time.Minute}}).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopDeadline, rep.Stopped)
	require.Less(t, len(rep.Started), 10)
	require.NotEmpty(t, rep.Started)
}

func TestRunCanceledRevertsClaims(t *testing.T) {
	e := newEnv(t, nil, enqueuertest.RegistryOptions{MinLatency: time.Hour})
	addNew(t, e.store, "g/r", 5)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rep, err := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5)}).Run(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, rep.Started)
	require.Equal(t, map[enqueuer.State]int{enqueuer.StateDefault: 5}, counts(t, e.store), "claims were reverted")
	_, held := e.locker.Holder(enqueuer.DefaultLeaseKey)
	require.False(t, held, "the lease was released")
}

func TestNewValidatesConfig(t *testing.T) {
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	ok := enqueuer.Config{Store: e.store, Registry: e.reg, Locker: e.locker, Capacity: capacity(1)}
	_, err := enqueuer.New(ok)
	require.NoError(t, err)
	for name, mutate := range map[string]func(*enqueuer.Config){
		"no store":     func(c *enqueuer.Config) { c.Store = nil },
		"no registry":  func(c *enqueuer.Config) { c.Registry = nil },
		"no locker":    func(c *enqueuer.Config) { c.Locker = nil },
		"no capacity":  func(c *enqueuer.Config) { c.Capacity = nil },
		"bad tags":     func(c *enqueuer.Config) { c.MaxTagsCount = -1 },
		"bad key":      func(c *enqueuer.Config) { c.LeaseKey = "a\x00b" },
		"ttl too long": func(c *enqueuer.Config) { c.LeaseTTL = 1000 * time.Hour },
	} {
		cfg := ok
		mutate(&cfg)
		_, err := enqueuer.New(cfg)
		require.ErrorIs(t, err, enqueuer.ErrConfig, name)
	}
}

// Losers log the meaning of ErrHeld: another instance is running.
func TestLeaseHeldIsLogged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	l, err := e.locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Minute)
	require.NoError(t, err)
	defer l.Release(ctx)
	_, err = e.enqueuer(t, enqueuer.Config{Capacity: capacity(1)}).Run(ctx)
	require.ErrorIs(t, err, lease.ErrHeld)
	lines := e.logs.lines(t, "enqueuer: cannot obtain the exclusive lease; another instance is already running")
	require.Len(t, lines, 1)
	require.Equal(t, enqueuer.DefaultLeaseKey, lines[0]["lease_key"])
}
