package bbm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"
	"github.com/ferryhq/ferry/storage"
)

// SyncWorker runs migrations to the end in the foreground, for a deploy
// step or a command-line tool: Run returns when nothing is left to do.
//
// It runs up to Options.Parallelism jobs at once (the budget is shared with
// every other worker of the same Work, across processes), each in a
// transaction of its own, paced by database health. While jobs run
// elsewhere, retries wait for their backoff or the budget is full, it waits
// (Interval, doubling up to MaxBackoff). It rides out a database it cannot
// reach for up to MaxOutage.
type SyncWorker struct {
	e *engine
}

var _ Handler = (*SyncWorker)(nil)

// NewSyncWorker returns a SyncWorker on db (storage.FromPool,
// storage.FromSQL or a *storage.DB, whose primary is used), the database
// where the target tables and, by default, Ferry's bbm tables live. It uses up to Parallelism+1 connections at a
// time. db may be nil when Options.Store and Options.Catalog are both set;
// Work then gets a nil Querier. Register Work on it before Run.
func NewSyncWorker(db storage.Handle, opts Options) *SyncWorker {
	w := &SyncWorker{e: newEngine(db, opts, "bbm.SyncWorker")}
	if w.e.handler == nil {
		w.e.handler = w
	}
	return w
}

// Register adds Work that migrations may name. Names must be unique on the
// worker.
func (w *SyncWorker) Register(works ...Work) error { return w.e.works.register(works...) }

// Admin returns the admin functions, validating against this worker's Work.
func (w *SyncWorker) Admin() *Admin { return &Admin{e: w.e} }

// FindJob implements Handler; see Handler.FindJob for the order.
func (w *SyncWorker) FindJob(ctx context.Context, store Store) (*Job, error) {
	return w.e.FindJob(ctx, store)
}

// ExecuteJob implements Handler.
func (w *SyncWorker) ExecuteJob(ctx context.Context, store Store, job *Job) error {
	return w.e.ExecuteJob(ctx, store, job)
}

// FinishedMigrationCount is how many migrations the last Run finished.
func (w *SyncWorker) FinishedMigrationCount() int { return int(w.e.finished.Load()) }

// LeftAlone names the migrations this worker met and left alone because
// their Work is not registered on it (another service or version runs
// them); each is also logged once.
func (w *SyncWorker) LeftAlone() []string { return w.e.leftAloneNames() }

// ResumeEligibleMigrations moves every paused migration back to active, so
// that the next Run includes it, and returns how many it moved.
func (w *SyncWorker) ResumeEligibleMigrations(ctx context.Context) (int, error) {
	if w.e.err != nil {
		return 0, w.e.err
	}
	n, err := w.e.store.ResumePaused(ctx)
	if err == nil && n > 0 {
		w.e.log.InfoContext(ctx, "resumed paused migrations", "count", n)
	}
	return n, err
}

// Run runs jobs until every active and running migration whose Work this
// worker has is finished or failed. A failed attempt is retried after
// RetryBackoff (doubling); what happens to a job that fails MaxJobAttempts
// times depends on the migration's FailurePolicy, and Run goes on with the
// other migrations either way. Jobs left running by a dead worker are taken
// over once their lease expires; Run waits for that. Paused migrations and
// migrations of Work this worker lacks are left alone. Run returns nil when
// none of the migrations it dealt with failed, else an error wrapping
// ErrMigrationFailed that names each of them.
func (w *SyncWorker) Run(ctx context.Context) error { return w.run(ctx, nil) }

// RunMigrations is Run limited to the named migrations: it runs them to the
// end and reports those that failed (including ones that had failed
// before). A name that does not exist is ErrMigrationNotFound; one whose
// Work is not registered here is ErrUnknownWork; a paused one is
// ErrInvalidTransition (resume it first).
func (w *SyncWorker) RunMigrations(ctx context.Context, names ...string) error {
	if w.e.err != nil {
		return w.e.err
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: no migration named", ErrMigrationNotFound)
	}
	for _, n := range names {
		m, err := w.e.store.MigrationByName(ctx, n)
		if err != nil {
			return err
		}
		if _, ok := w.e.works.get(m.WorkName); !ok {
			return fmt.Errorf("%w: migration %q needs Work %q, not registered on this worker (registered: %v)",
				ErrUnknownWork, m.Name, m.WorkName, w.e.works.names())
		}
		if m.Status == StatusPaused {
			return fmt.Errorf("%w: migration %q is paused; resume it first", ErrInvalidTransition, m.Name)
		}
	}
	return w.run(ctx, names)
}

func (w *SyncWorker) run(ctx context.Context, names []string) error {
	if w.e.err != nil {
		return w.e.err
	}
	w.e.finished.Store(0)
	ctx, rs := withRun(withOnly(ctx, names))
	g, gctx := errgroup.WithContext(ctx)
	for range w.e.o.Parallelism {
		g.Go(func() error { return w.slot(gctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	named := nameSet{}
	for _, n := range names {
		named[n] = true
	}
	return w.failures(ctx, func(m *Migration) bool { return rs.has(m.ID) || named[m.Name] })
}

// slot runs jobs one after the other until nothing is left.
func (w *SyncWorker) slot(ctx context.Context) error {
	idle := 0
	var outageSince time.Time
	for {
		res, err := w.e.step(ctx, ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !transient(err) {
				return err
			}
			if outageSince.IsZero() {
				outageSince = time.Now()
			}
			if time.Since(outageSince) > w.e.o.MaxOutage {
				return fmt.Errorf("bbm: sync worker: the database has failed for %s (MaxOutage): %w",
					time.Since(outageSince).Round(time.Second), err)
			}
			d := backoff.Spread(w.e.backoff(idle), w.e.o.Jitter)
			idle++
			w.e.log.WarnContext(ctx, "database error; retrying", "error", err, "wait", d,
				"outage", time.Since(outageSince).Round(time.Millisecond), "max_outage", w.e.o.MaxOutage)
			if err := wait.Sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		outageSince = time.Time{}
		switch res {
		case stepDone:
			return nil
		case stepBusy:
			// A place frees up when any job ends: ask again soon rather
			// than backing off while others take the budget.
			if err := wait.Sleep(ctx, backoff.Spread(w.e.o.Interval, w.e.o.Jitter)); err != nil {
				return err
			}
		case stepWait:
			d := backoff.Spread(w.e.backoff(idle), w.e.o.Jitter)
			idle++
			w.e.log.DebugContext(ctx, "nothing to run now (jobs run elsewhere, retries back off, or the parallelism budget is full); waiting", "wait", d)
			if err := wait.Sleep(ctx, d); err != nil {
				return err
			}
		default:
			idle = 0
		}
	}
}

// failures is Run's result: an error naming every failed migration the
// run reports.
func (w *SyncWorker) failures(ctx context.Context, report func(*Migration) bool) error {
	failed, err := w.e.store.Migrations(ctx, StatusFailed)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range failed {
		if !report(m) {
			continue
		}
		err := fmt.Errorf("%w: %q: %s: %s", ErrMigrationFailed, m.Name, m.ErrorCode, m.ErrorMessage)
		if s := m.ErrorCode.sentinel(); s != nil {
			err = fmt.Errorf("%w: %q (%w): %s", ErrMigrationFailed, m.Name, s, m.ErrorMessage)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// leftAloneNames lists the migrations left alone, sorted.
func (e *engine) leftAloneNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.skipped))
	for _, n := range e.skipped {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
