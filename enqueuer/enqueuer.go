package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
)

// Defaults of Config.
const (
	// DefaultLeaseKey is the one lease all enqueuer instances share.
	DefaultLeaseKey = "container_registry:migration:enqueuer_worker"
	// DefaultLeaseTTL is short, so that a holder that was killed blocks
	// the next run for at most that long; lease.Guard renews it every
	// third of it while a run goes on, however long the run.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultMaxRetries is how many times an aborted migration is retried
	// before the repository is skipped.
	DefaultMaxRetries = 3
	// DefaultPreImportTimeout: a repository pre-importing longer than this
	// is stale.
	DefaultPreImportTimeout = 30 * time.Minute
	// DefaultImportTimeout: a repository importing longer than this is
	// stale.
	DefaultImportTimeout = 10 * time.Minute
	// DefaultMaxAbortsPerRun is Config.MaxAbortsPerRun's default.
	DefaultMaxAbortsPerRun = 10
	// DefaultStaleAfter: the stale guard asks the registry about imports
	// that have been in their pass longer than this.
	DefaultStaleAfter = 5 * time.Minute
	// DefaultStaleCheckInterval: the stale guard runs at most this often
	// in one process.
	DefaultStaleCheckInterval = time.Minute
	// DefaultDeferKey is the filter key when Config.DeferKey is not set.
	DefaultDeferKey = "default"
)

// Config configures an Enqueuer. Store, Registry, Locker and Capacity are
// required; everything else has a default.
type Config struct {
	// Store keeps the repositories and their migration state.
	Store Store
	// Registry starts, inspects and cancels imports.
	Registry RegistryClient
	// Locker provides the lease that makes runs exclusive.
	Locker lease.Locker
	// LeaseKey is the lease's key. Default DefaultLeaseKey.
	LeaseKey string
	// LeaseTTL is the lease's ttl; the lease is renewed every third of it
	// while a run goes on. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Capacity returns how many imports may be in progress at once (in
	// InProgressStates). It is asked again before every round of starts,
	// so it may change while a run goes on. Required.
	Capacity func(ctx context.Context) int
	// Enabled is the feature flag: while it returns false nothing is
	// started, and a running loop stops. Default: always enabled.
	Enabled func(ctx context.Context) bool
	// MaxRetries is how many times an aborted repository is retried; one
	// that has been retried that often is skipped instead. Default
	// DefaultMaxRetries; negative: never retry.
	MaxRetries int
	// MaxTagsCount skips repositories with more tags than this. Default 0:
	// no limit.
	MaxTagsCount int
	// Defer, when set, returns a non-empty reason for a repository that
	// must not be started now: a plan tier not migrated yet, a namespace
	// on a deny list, one created after a date. It is deferred, not
	// skipped: it keeps its state and its place in the queue, later runs
	// pass over it without asking again, and it is looked at again when
	// the filter's rules change (DeferKey) or an administrator asks
	// (Reconsider).
	Defer func(ctx context.Context, r Repository) string
	// DeferKey names the current rules of Defer, for instance a hash of
	// the plan tiers, the date and the deny list it uses; it is read at
	// the start of every run. When it changes, every repository deferred
	// under another key is looked at again. Default: DefaultDeferKey,
	// always the same (only Reconsider clears deferrals).
	DeferKey func(ctx context.Context) string
	// Order is the order in which new and aborted repositories are
	// started: OrderOldest (the default); OrderSmallest (fewest tags
	// first, which keeps the capacity busy with quick imports and the
	// count of migrated repositories rising); OrderPriority (the host's
	// Repository.Priority, highest first, then oldest: by plan tier then
	// age when the host records tiers as priorities); or the host's own
	// keys made with OrderBy, such as OrderBy("-priority", "tag_count").
	// Each pick reads one short page in this order from the Store, so
	// the waiting set is never loaded; PostgresStore serves the named
	// orders from an index (a page of 35 of 100,000 waiting in about a
	// millisecond) and other keys with a top-N sort in the database
	// (about 50 ms at 100,000; see BenchmarkPickOrder100k).
	Order Order
	// ForecastProgress makes every Forecast ask the registry how far the
	// running imports have got (as ForecastOptions.RegistryProgress), so
	// that the dashboard, prommetrics and status output built on Forecast
	// use it too. Set it for a registry that reports progress (Ferry's
	// importserver does; GitLab's does not, and each forecast would cost
	// a status call per running import for nothing). Default false.
	ForecastProgress bool
	// MinStartInterval is a minimum wait between two starts of a
	// pre-import (new or retried), across all instances: a run starts
	// nothing new until that long after the latest start, and then one.
	// Final imports are not held back. Default 0: no wait.
	MinStartInterval time.Duration
	// MaxAbortsPerRun ends a run (with ErrTooManyAborts) once that many
	// starts were aborted in it. Default DefaultMaxAbortsPerRun; negative:
	// no limit.
	MaxAbortsPerRun int
	// Strategy decides how a run fills the capacity. Default ParallelLoop{}.
	Strategy Strategy
	// StaleAfter: before starting anything, a run asks the registry about
	// imports that have been in their pass (pre_importing, importing)
	// longer than this, the StaleBatch oldest of them, and settles those
	// that finished, failed or vanished. Default DefaultStaleAfter.
	StaleAfter time.Duration
	// PreImportTimeout and ImportTimeout are how long a pass may run: a
	// stale import that the registry still runs past its timeout is
	// cancelled, then aborted (or skipped as SkipCanceled when its retries
	// are nearly used up); one within its timeout is left alone. Defaults
	// DefaultPreImportTimeout and DefaultImportTimeout.
	PreImportTimeout time.Duration
	ImportTimeout    time.Duration
	// StaleBatch bounds the stale repositories one run looks at. Default:
	// twice the capacity, at least 10.
	StaleBatch int
	// StaleCheckInterval is how often the stale guard runs in this
	// process (runs in between skip it). Default
	// DefaultStaleCheckInterval; negative: every run.
	StaleCheckInterval time.Duration
	// Logger receives one line per start, skip and abort, with the fields
	// import_type, container_repository_id, container_repository_path and
	// container_repository_migration_state. Default: slog.Default().
	Logger *slog.Logger
	// Clock is the time source for timestamps, stale timeouts and loop
	// deadlines. Default time.Now.
	Clock func() time.Time
	// Observer is told about runs, starts, skips, aborts and the capacity,
	// for metrics and tracing (see prommetrics; MultiObserver combines
	// several). Default: none (an empty ObserverFuncs).
	Observer Observer
}

// Enqueuer fills the registry's import capacity. Each Run holds one
// exclusive lease for its whole duration, so runs triggered in parallel do
// not compete for repositories: the first fills the capacity and the
// others return at once with an error wrapping lease.ErrHeld.
type Enqueuer struct {
	cfg Config
	// wake tells a running stream that capacity may have been freed.
	wake chan struct{}

	staleMu   sync.Mutex
	lastStale time.Time // when the stale guard last ran, by Config.Clock
}

// New checks cfg, applies its defaults and returns an Enqueuer.
func New(cfg Config) (*Enqueuer, error) {
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: Config.Store is required", ErrConfig)
	case cfg.Registry == nil:
		return nil, fmt.Errorf("%w: Config.Registry is required", ErrConfig)
	case cfg.Locker == nil:
		return nil, fmt.Errorf("%w: Config.Locker is required", ErrConfig)
	case cfg.Capacity == nil:
		return nil, fmt.Errorf("%w: Config.Capacity is required", ErrConfig)
	case cfg.MaxTagsCount < 0:
		return nil, fmt.Errorf("%w: Config.MaxTagsCount is negative", ErrConfig)
	case cfg.MinStartInterval < 0:
		return nil, fmt.Errorf("%w: Config.MinStartInterval is negative", ErrConfig)
	}
	if _, err := cfg.Order.Keys(); err != nil {
		return nil, fmt.Errorf("%w: Config.Order: %w", ErrConfig, err)
	}
	if cfg.Order == "" {
		cfg.Order = OrderOldest
	}
	if cfg.LeaseKey == "" {
		cfg.LeaseKey = DefaultLeaseKey
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if err := lease.Check(cfg.LeaseKey, cfg.LeaseTTL); err != nil {
		return nil, fmt.Errorf("%w: lease: %w", ErrConfig, err)
	}
	if cfg.Enabled == nil {
		cfg.Enabled = func(context.Context) bool { return true }
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	switch {
	case cfg.MaxAbortsPerRun == 0:
		cfg.MaxAbortsPerRun = DefaultMaxAbortsPerRun
	case cfg.MaxAbortsPerRun < 0:
		cfg.MaxAbortsPerRun = 0
	}
	if cfg.Strategy == nil {
		cfg.Strategy = ParallelLoop{}
	}
	if cfg.PreImportTimeout <= 0 {
		cfg.PreImportTimeout = DefaultPreImportTimeout
	}
	if cfg.ImportTimeout <= 0 {
		cfg.ImportTimeout = DefaultImportTimeout
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.StaleCheckInterval == 0 {
		cfg.StaleCheckInterval = DefaultStaleCheckInterval
	}
	if cfg.DeferKey == nil {
		cfg.DeferKey = func(context.Context) string { return DefaultDeferKey }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = ObserverFuncs{}
	}
	return &Enqueuer{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Wake tells a run in progress in this process that capacity may have
// been freed (a notification finished an import), so that ParallelLoop
// looks again at once instead of at its next registry answer. It never
// blocks; without a run in progress it does nothing but make the next
// run look once more. Scheduler.Kick calls it.
func (e *Enqueuer) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// staleDue reports whether the stale guard should run now, and if so
// records that it does.
func (e *Enqueuer) staleDue(now time.Time) bool {
	if e.cfg.StaleCheckInterval < 0 {
		return true
	}
	e.staleMu.Lock()
	defer e.staleMu.Unlock()
	if !e.lastStale.IsZero() && now.Sub(e.lastStale) < e.cfg.StaleCheckInterval && !now.Before(e.lastStale) {
		return false
	}
	e.lastStale = now
	return true
}

// Run is one invocation, as a job system or a notification would trigger
// it. Under the lease it first deals with stale imports (see
// Config.PreImportTimeout), then lets the Strategy start imports: final
// imports of pre-imported repositories, aborted repositories again (import
// type "retry"), then new ones (import type "next"), oldest first, never
// more than the free capacity.
//
// When another instance holds the lease, Run logs it and returns an error
// wrapping lease.ErrHeld at once. A 429 from the registry ends the run
// normally (Report.Stopped is StopTooManyImports) with nothing marked
// failed, and so does a 425 (StopTooEarly: a notification is still on its
// way). An unreachable registry ends it with an error wrapping
// ErrRegistryUnavailable. All reads and writes use the primary
// (storage.UsePrimary): the capacity count must not come from a lagging
// replica. The Report says what was done even when Run fails.
func (e *Enqueuer) Run(ctx context.Context) (Report, error) {
	begin := time.Now()
	rep := Report{}
	ctx = e.cfg.Observer.RunStart(ctx, RunStartEvent{})
	runCtx := ctx // RunEnd gets the context RunStart returned
	finish := func(err error) (Report, error) {
		rep.Duration = time.Since(begin)
		e.cfg.Observer.RunEnd(runCtx, RunEvent{Report: rep, Err: err})
		return rep, err
	}
	if !e.cfg.Enabled(ctx) {
		rep.Stopped = StopDisabled
		e.cfg.Logger.DebugContext(ctx, "enqueuer: disabled by its feature flag")
		return finish(nil)
	}
	ctx = storage.UsePrimary(ctx)
	r := &Runner{e: e, report: &rep, begin: e.cfg.Clock()}
	err := lease.Guard(ctx, e.cfg.Locker, e.cfg.LeaseKey, e.cfg.LeaseTTL, func(ctx context.Context, l lease.Lease) error {
		if err := r.reconsider(ctx); err != nil {
			return err
		}
		if err := r.guardStale(ctx); err != nil {
			return err
		}
		return e.cfg.Strategy.Fill(ctx, r)
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, lease.ErrHeld):
		rep.Stopped = StopLeaseHeld
		e.cfg.Logger.InfoContext(ctx, "enqueuer: cannot obtain the exclusive lease; another instance is already running",
			"lease_key", e.cfg.LeaseKey, "error", err)
		return finish(fmt.Errorf("enqueuer: %w", err))
	case errors.Is(err, ErrTooManyImports):
		rep.Stopped = StopTooManyImports
		err = nil
	case errors.Is(err, ErrTooEarly):
		rep.Stopped = StopTooEarly
		err = nil
	case errors.Is(err, ErrRegistryUnavailable):
		rep.Stopped = StopRegistryUnavailable
	case errors.Is(err, ErrTooManyAborts):
		rep.Stopped = StopTooManyAborts
	case err != nil && rep.Stopped == "":
		rep.Stopped = StopError
	}
	e.cfg.Logger.InfoContext(ctx, "enqueuer: run finished", "stopped", rep.Stopped,
		"started", len(rep.Started), "skipped", len(rep.Skipped), "aborted", len(rep.Aborted),
		"finished", len(rep.Finished), "reconciled", len(rep.Reconciled), "deferred", rep.Deferred,
		"duration", time.Since(begin))
	if err != nil {
		return finish(fmt.Errorf("enqueuer: run: %w", err))
	}
	return finish(nil)
}

// reconsider reads the filter's key for this run and, with a filter set,
// clears the deferrals made under other keys: the rules changed, so those
// repositories are looked at again.
func (r *Runner) reconsider(ctx context.Context) error {
	cfg := r.e.cfg
	r.deferKey = cfg.DeferKey(ctx)
	if r.deferKey == "" {
		r.deferKey = DefaultDeferKey
	}
	if cfg.Defer == nil {
		return nil
	}
	n, err := cfg.Store.Reconsider(ctx, r.deferKey)
	if n > 0 {
		cfg.Logger.InfoContext(ctx, "enqueuer: the filter changed; deferred repositories are looked at again",
			"defer_key", r.deferKey, "reconsidered", n)
	}
	return err
}

// repoAttrs are the structured log fields of a repository.
func repoAttrs(r Repository) []any {
	return []any{
		"container_repository_id", r.ID,
		"container_repository_path", r.Path,
		"container_repository_migration_state", string(r.State),
	}
}
