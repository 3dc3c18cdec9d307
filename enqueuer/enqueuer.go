package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
)

// Defaults of Config.
const (
	// DefaultLeaseKey is the one lease all enqueuer instances share.
	DefaultLeaseKey = "container_registry:migration:enqueuer_worker"
	// DefaultLeaseTTL outlives the longest Loop (DefaultLoopDeadline);
	// lease.Guard renews it every third of it anyway.
	DefaultLeaseTTL = 30 * time.Minute
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
	// DefaultStaleBatch caps the stale repositories of each state that one
	// Run checks.
	DefaultStaleBatch = 100
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
	// LeaseTTL is the lease's ttl. Default DefaultLeaseTTL.
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
	// Exclude, when set, returns a non-empty reason for repositories that
	// must not be migrated (an excluded namespace, say); they are skipped
	// with that reason.
	Exclude func(ctx context.Context, r Repository) string
	// MaxAbortsPerRun ends a run (with ErrTooManyAborts) once that many
	// starts were aborted in it. Default DefaultMaxAbortsPerRun; negative:
	// no limit.
	MaxAbortsPerRun int
	// Strategy decides how a run fills the capacity. Default ParallelLoop{}.
	Strategy Strategy
	// PreImportTimeout and ImportTimeout tell when a pre-import or import
	// is stale: every Run first cancels such imports at the registry and
	// aborts them. Defaults DefaultPreImportTimeout and
	// DefaultImportTimeout.
	PreImportTimeout time.Duration
	ImportTimeout    time.Duration
	// StaleBatch caps the stale repositories of each state that one Run
	// handles. Default DefaultStaleBatch.
	StaleBatch int
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
	if cfg.StaleBatch <= 0 {
		cfg.StaleBatch = DefaultStaleBatch
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
	return &Enqueuer{cfg: cfg}, nil
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
// failed. An unreachable registry ends it with an error wrapping
// ErrRegistryUnavailable. All reads and writes use the primary
// (storage.UsePrimary): the capacity count must not come from a lagging
// replica. The Report says what was done even when Run fails.
func (e *Enqueuer) Run(ctx context.Context) (Report, error) {
	begin := time.Now()
	rep := Report{}
	finish := func(err error) (Report, error) {
		rep.Duration = time.Since(begin)
		e.cfg.Observer.RunFinished(ctx, RunEvent{Report: rep, Err: err})
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
	case errors.Is(err, ErrRegistryUnavailable):
		rep.Stopped = StopRegistryUnavailable
	case errors.Is(err, ErrTooManyAborts):
		rep.Stopped = StopTooManyAborts
	case err != nil && rep.Stopped == "":
		rep.Stopped = StopError
	}
	e.cfg.Logger.InfoContext(ctx, "enqueuer: run finished", "stopped", rep.Stopped,
		"started", len(rep.Started), "skipped", len(rep.Skipped), "aborted", len(rep.Aborted),
		"finished", len(rep.Finished), "duration", time.Since(begin))
	if err != nil {
		return finish(fmt.Errorf("enqueuer: run: %w", err))
	}
	return finish(nil)
}

// repoAttrs are the structured log fields of a repository.
func repoAttrs(r Repository) []any {
	return []any{
		"container_repository_id", r.ID,
		"container_repository_path", r.Path,
		"container_repository_migration_state", string(r.State),
	}
}
