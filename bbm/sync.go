package bbm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ferryhq/ferry/storage"

	"github.com/ferryhq/ferry/internal/wait"
)

// SyncWorker runs migrations to the end in the foreground, for a deploy
// step or a command-line tool: Run returns when nothing is left to do.
//
// It works in batches: it waits (up to LockWaitTimeout) for the worker lock,
// runs up to MaxJobsPerBatch jobs or until BatchTimeout, releases the lock
// and pauses for a random while. Only the lock is held between jobs; every
// job runs in a transaction of its own.
type SyncWorker struct {
	e *engine
}

var _ Handler = (*SyncWorker)(nil)

// NewSyncWorker returns a SyncWorker on db, a *pgxpool.Pool or *storage.DB
// where the target tables (and, by default, Ferry's bbm tables) live. The
// worker holds one connection for the lock and uses one more at a time for
// the job, so the pool needs at least two. db may be nil when Options.Store
// and Options.Catalog are both set; Work then gets a nil Querier. Register
// Work on it before Run.
func NewSyncWorker(db storage.Beginner, opts Options) *SyncWorker {
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

// GrabLock implements Handler: it waits for the worker lock until ctx's
// deadline (Run gives it LockWaitTimeout).
func (w *SyncWorker) GrabLock(ctx context.Context, store Store) (Lock, error) {
	wait := w.e.o.LockWaitTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	w.e.log.DebugContext(ctx, "waiting for the worker lock", "wait", wait)
	return store.AcquireLock(ctx, max(wait, time.Millisecond))
}

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

// Run runs jobs until every active and running migration is finished or
// failed. A failed attempt is retried (after RetryBackoff, doubling) before
// new ranges; a job that fails MaxJobAttempts times fails its migration,
// and Run goes on with the others. Jobs left running by a dead worker are
// taken over once their lease expires; Run waits for that. Run returns nil
// when no migration is failed at the end, else an error wrapping
// ErrMigrationFailed that names each failed one. Paused migrations are left
// alone.
func (w *SyncWorker) Run(ctx context.Context) error {
	if w.e.err != nil {
		return w.e.err
	}
	w.e.finished.Store(0)
	idle := 0
	for {
		res, err := w.batch(ctx)
		if err != nil {
			return err
		}
		switch {
		case res == batchDone:
			return w.failures(ctx)
		case res == batchWaiting:
			d := backoff(w.e.o.Interval, w.e.o.MaxBackoff, idle)
			idle++
			w.e.log.InfoContext(ctx, "jobs are running elsewhere or await a dead worker's lease; waiting", "wait", d)
			if err := wait.Sleep(ctx, d); err != nil {
				return err
			}
		default:
			idle = 0
			if p := w.e.o.BatchPause; p > 0 {
				d := p/2 + rand.N(p+1)
				w.e.log.DebugContext(ctx, "released the worker lock; pausing", "pause", d)
				if err := wait.Sleep(ctx, d); err != nil {
					return err
				}
			}
		}
	}
}

type batchResult int

const (
	batchMore    batchResult = iota // stopped at a batch limit; more to do
	batchDone                       // nothing left
	batchWaiting                    // only jobs running elsewhere are left
)

// batch holds the lock for one batch of jobs.
func (w *SyncWorker) batch(ctx context.Context) (batchResult, error) {
	h := w.e.handler
	lockCtx, cancel := context.WithTimeout(ctx, w.e.o.LockWaitTimeout)
	lock, err := h.GrabLock(lockCtx, w.e.store)
	cancel()
	if err != nil {
		return batchMore, fmt.Errorf("bbm: sync worker: %w", err)
	}
	defer w.e.release(ctx, lock)
	deadline := time.Now().Add(w.e.o.BatchTimeout)
	conflicts := 0
	for range w.e.o.MaxJobsPerBatch {
		if time.Now().After(deadline) {
			break
		}
		if err := lock.Check(ctx); err != nil {
			w.e.log.WarnContext(ctx, "lost the worker lock; taking it again", "error", err)
			return batchMore, nil
		}
		if err := w.e.awaitThrottle(ctx); err != nil {
			return batchMore, err
		}
		job, err := h.FindJob(ctx, w.e.store)
		if errors.Is(err, ErrNoJobReady) {
			return batchWaiting, nil
		}
		if err != nil {
			return batchMore, fmt.Errorf("bbm: finding a job: %w", err)
		}
		if job == nil {
			return batchDone, nil
		}
		err = h.ExecuteJob(ctx, w.e.store, job)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return batchMore, ctx.Err()
		}
		var je *JobError
		switch {
		case errors.As(err, &je) && je.Terminal():
			// The migration failed; go on with the others.
		case errors.As(err, &je):
			// The job goes first again; give the cause time to pass.
			d := backoff(w.e.o.RetryBackoff, w.e.o.MaxRetryBackoff, je.Attempt-1)
			if err := wait.Sleep(ctx, d); err != nil {
				return batchMore, err
			}
		case errors.Is(err, ErrInvalidTransition), errors.Is(err, ErrMigrationNotFound):
			// Paused (or removed) between FindJob and the claim; the
			// next FindJob skips it.
			w.e.log.InfoContext(ctx, "migration no longer runnable", "error", err)
		case errors.Is(err, ErrJobConflict), errors.Is(err, ErrJobLost):
			// Only possible when another worker runs without the lock
			// (it lost it); back off rather than race it.
			d := backoff(w.e.o.RetryBackoff, w.e.o.MaxRetryBackoff, conflicts)
			conflicts++
			w.e.log.WarnContext(ctx, "job taken by another worker", "error", err, "wait", d)
			if err := wait.Sleep(ctx, d); err != nil {
				return batchMore, err
			}
		default:
			return batchMore, fmt.Errorf("bbm: executing a job: %w", err)
		}
	}
	return batchMore, nil
}

// failures is Run's result: an error naming every failed migration.
func (w *SyncWorker) failures(ctx context.Context) error {
	failed, err := w.e.store.Migrations(ctx, StatusFailed)
	if err != nil {
		return err
	}
	if len(failed) == 0 {
		return nil
	}
	errs := make([]error, 0, len(failed))
	for _, m := range failed {
		err := fmt.Errorf("%w: %q: %s: %s", ErrMigrationFailed, m.Name, m.ErrorCode, m.ErrorMessage)
		if s := m.ErrorCode.sentinel(); s != nil {
			err = fmt.Errorf("%w: %q (%w): %s", ErrMigrationFailed, m.Name, s, m.ErrorMessage)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
