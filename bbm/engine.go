package bbm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/storage"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"
)

// engine is what SyncWorker and Worker share: the registered Work, the
// options, and the FindJob and ExecuteJob steps.
type engine struct {
	db       storage.Handle
	store    Store
	catalog  Catalog
	handler  Handler
	log      *slog.Logger
	obs      Observer
	throttle Throttler
	o        Options
	works    workSet
	sizes    *sizer
	pace     *pacer
	finished atomic.Int64 // migrations finished by this worker in the current run
	err      error        // a setup problem, reported by Run and Admin

	mu       sync.Mutex
	lastReap time.Time
	skipped  map[int64]string // migrations left alone for want of their Work, reported once
}

func newEngine(db storage.Handle, o Options, component string) *engine {
	o = o.withDefaults()
	e := &engine{db: db, o: o, store: o.Store, catalog: o.Catalog, handler: o.Handler,
		obs: o.Observer, throttle: o.Throttler, sizes: newSizer(o.Adaptive), pace: newPacer(),
		log: o.Logger.With("component", component), skipped: map[int64]string{}}
	if e.store == nil {
		if db == nil {
			e.err = fmt.Errorf("%w: pass a database or Options.Store", ErrNoDatabase)
		} else {
			e.store = NewPostgresStore(db, PostgresStoreOptions{})
		}
	}
	if n := storage.MaxConns(db); n > 0 && renewsOn(e.store, db) && o.Parallelism >= n {
		e.err = fmt.Errorf("%w: Parallelism %d needs a pool of at least %d connections (each running job holds one "+
			"for its transaction, lease renewals need one more) and the pool opens at most %d: raise its MaxConns "+
			"or lower Parallelism", ErrPoolTooSmall, o.Parallelism, o.Parallelism+1, n)
	}
	if e.catalog == nil {
		if db == nil {
			e.err = fmt.Errorf("%w: pass a database or Options.Catalog", ErrNoDatabase)
		} else {
			e.catalog = NewPostgresCatalog(db)
		}
	}
	if e.obs == nil {
		e.obs = ObserverFuncs{}
	}
	if e.throttle == nil && db != nil && !o.Health.Off {
		e.throttle = NewHealthThrottler(db, o.Health, e.log)
	}
	return e
}

// renewsOn reports whether store renews job leases through db, the handle
// the jobs' transactions hold connections of: Ferry's PostgresStore on
// that same handle (the default store is).
func renewsOn(store Store, db storage.Handle) bool {
	ps, ok := store.(*PostgresStore)
	return ok && db != nil && ps.db == db
}

// backoff is the pause after n steps in a row that failed or found nothing
// to do: Interval doubling up to MaxBackoff.
func (e *engine) backoff(n int) time.Duration {
	return backoff.Policy{Base: e.o.Interval, Max: e.o.MaxBackoff}.Delay(n)
}

// detached is a context for recording an outcome: it outlives the
// cancellation of ctx (the work is done, its result must be kept) but not
// forever.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

// forget drops what the worker keeps in memory about a migration that is
// done.
func (e *engine) forget(id int64) {
	e.sizes.forget(id)
	e.pace.forget(id)
}

// stepResult is what one step of a worker's job loop did.
type stepResult int

const (
	stepRan      stepResult = iota // ran a job (whatever its outcome); go on
	stepDone                       // nothing is left for this worker
	stepWait                       // nothing to do now: jobs run elsewhere or retries wait
	stepBusy                       // the parallelism budget is full: try again soon
	stepConflict                   // lost a race for a range or job; try again at once
)

// step finds and runs one job: waitCtx ends the wait for a job, jobCtx the
// job itself. Errors are those of finding or claiming a job; a job that
// failed is recorded and is not an error here.
func (e *engine) step(waitCtx, jobCtx context.Context) (stepResult, error) {
	if err := e.awaitThrottle(waitCtx); err != nil {
		return stepWait, err
	}
	job, err := e.handler.FindJob(waitCtx, e.store)
	if errors.Is(err, ErrNoJobReady) {
		return stepWait, nil
	}
	if err != nil {
		return stepWait, fmt.Errorf("bbm: finding a job: %w", err)
	}
	if job == nil {
		return stepDone, nil
	}
	touch(waitCtx, job.MigrationID)
	err = e.handler.ExecuteJob(jobCtx, e.store, job)
	var je *JobError
	var re *recordError
	switch {
	case err == nil, errors.As(err, &je), errors.Is(err, ErrJobLost), errors.As(err, &re) && re.committed:
		// Done, failed and recorded, taken over, or done but not recorded
		// (it runs again when its lease expires): the next job.
		if job.Migration != nil {
			if err := wait.Sleep(waitCtx, e.pauseAfter(job.Migration.ID)); err != nil {
				return stepRan, nil // stopping
			}
		}
		return stepRan, nil
	case errors.Is(err, ErrBusy):
		return stepBusy, nil
	case errors.Is(err, ErrJobConflict):
		return stepConflict, nil
	case errors.Is(err, ErrInvalidTransition), errors.Is(err, ErrMigrationNotFound):
		// Paused (or removed) between FindJob and the claim; the next
		// FindJob skips it.
		e.log.InfoContext(waitCtx, "migration no longer runnable", "error", err)
		return stepRan, nil
	case jobCtx.Err() != nil:
		return stepRan, jobCtx.Err()
	}
	return stepWait, fmt.Errorf("bbm: running a job: %w", err)
}

// pauseAfter is the pause after a job of a migration: BatchPause plus
// what the job-duration pacing asks for.
func (e *engine) pauseAfter(migrationID int64) time.Duration {
	return e.o.BatchPause + e.pace.pause(migrationID)
}

// transient reports whether err may go away by itself (the database is
// unreachable, restarting or overloaded), so that a worker should retry
// rather than give up.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if configCode(err) != CodeNone || errors.Is(err, ErrUnknownWork) || errors.Is(err, ErrNoDatabase) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "40", "55": // connection, resources, shutdown/cancel, rollback, lock not available
			return true
		}
		return false
	}
	return true // network errors, timeouts, pool closed by a restart
}

// runState is what one Run of a worker remembers: the migrations it
// dealt with (ran a job of, finished, failed, reaped a job of), whose
// failures its result reports.
type runState struct {
	mu      sync.Mutex
	touched map[int64]bool
}

type runKey struct{}

func withRun(ctx context.Context) (context.Context, *runState) {
	rs := &runState{touched: map[int64]bool{}}
	return context.WithValue(ctx, runKey{}, rs), rs
}

// touch records that the current Run dealt with migration id.
func touch(ctx context.Context, id int64) {
	if rs, ok := ctx.Value(runKey{}).(*runState); ok {
		rs.mu.Lock()
		rs.touched[id] = true
		rs.mu.Unlock()
	}
}

func (rs *runState) has(id int64) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.touched[id]
}

// awaitThrottle returns once the Throttler lets jobs run.
func (e *engine) awaitThrottle(ctx context.Context) error {
	if e.throttle == nil {
		return nil
	}
	for n := 0; ; n++ {
		d, err := e.throttle.Throttle(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			d = Decision{Hold: true, Reason: err.Error()}
		}
		if !d.Hold {
			return nil
		}
		pause := d.RetryAfter
		if pause <= 0 {
			pause = e.backoff(n)
		}
		e.log.InfoContext(ctx, "throttled: holding jobs", "reason", d.Reason, "wait", pause)
		e.obs.Throttled(ctx, ThrottleEvent{Reason: d.Reason, Wait: pause})
		if err := wait.Sleep(ctx, pause); err != nil {
			return err
		}
	}
}
