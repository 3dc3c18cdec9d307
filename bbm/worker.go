package bbm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ferryhq/ferry/storage"

	"github.com/ferryhq/ferry/internal/wait"
)

// Worker runs migrations in the background of a long-running process. Each
// round it tries the worker lock without waiting (another process holding
// it means this one has nothing to do), runs up to MaxJobsPerBatch jobs,
// releases the lock and waits Interval (with jitter). When it finds nothing
// to do, or a round fails, the wait doubles up to MaxBackoff; a round that
// ran jobs resets it.
//
// Stop, or cancelling Run's context, ends it. Stop lets the running job
// finish while its context allows and then abandons it: the job's
// transaction rolls back, the attempt is recorded as cancelled and not
// counted, and the job runs again later.
type Worker struct {
	e *engine

	mu      sync.Mutex
	running bool
	stop    context.CancelFunc // ends waits: no new jobs
	abandon context.CancelFunc // cancels the running job
	done    chan struct{}
}

var _ Handler = (*Worker)(nil)

// NewWorker returns a Worker on db; see NewSyncWorker for db. Register Work
// on it before Run or Start.
func NewWorker(db storage.Beginner, opts Options) *Worker {
	w := &Worker{e: newEngine(db, opts, "bbm.Worker")}
	if w.e.handler == nil {
		w.e.handler = w
	}
	return w
}

// Register adds Work that migrations may name. Names must be unique on the
// worker.
func (w *Worker) Register(works ...Work) error { return w.e.works.register(works...) }

// Admin returns the admin functions, validating against this worker's Work.
func (w *Worker) Admin() *Admin { return &Admin{e: w.e} }

// GrabLock implements Handler: it tries the worker lock once.
func (w *Worker) GrabLock(ctx context.Context, store Store) (Lock, error) {
	return store.AcquireLock(ctx, 0)
}

// FindJob implements Handler; see Handler.FindJob for the order.
func (w *Worker) FindJob(ctx context.Context, store Store) (*Job, error) {
	return w.e.FindJob(ctx, store)
}

// ExecuteJob implements Handler.
func (w *Worker) ExecuteJob(ctx context.Context, store Store, job *Job) error {
	return w.e.ExecuteJob(ctx, store, job)
}

// Start runs the worker in a goroutine of its own until Stop or until ctx
// is cancelled. It is an error to start a running worker.
func (w *Worker) Start(ctx context.Context) error {
	ready, err := w.begin(ctx)
	if err != nil {
		return err
	}
	go w.loop(ready)
	return nil
}

// Run runs the worker until Stop or until ctx is cancelled, and returns
// nil after Stop, ctx's error after a cancellation.
func (w *Worker) Run(ctx context.Context) error {
	r, err := w.begin(ctx)
	if err != nil {
		return err
	}
	w.loop(r)
	return r.parent.Err()
}

// Stop asks the worker to start no more jobs and waits for it to end. The
// running job may finish until ctx is done; then it is abandoned. Stop on a
// worker that is not running returns nil.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return nil
	}
	stop, abandon, done := w.stop, w.abandon, w.done
	w.mu.Unlock()
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		abandon()
		<-done
		return ctx.Err()
	}
}

// run is one Run's contexts: waits end on stop, jobs on abandon.
type run struct {
	parent  context.Context
	waitCtx context.Context
	jobCtx  context.Context
	done    chan struct{}
	cleanup func()
}

func (w *Worker) begin(ctx context.Context) (run, error) {
	if w.e.err != nil {
		return run{}, w.e.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return run{}, ErrWorkerRunning
	}
	jobCtx, abandon := context.WithCancel(ctx)
	waitCtx, stop := context.WithCancel(jobCtx)
	w.running, w.stop, w.abandon, w.done = true, stop, abandon, make(chan struct{})
	done := w.done
	return run{parent: ctx, waitCtx: waitCtx, jobCtx: jobCtx, done: done, cleanup: func() {
		stop()
		abandon()
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
		close(done)
	}}, nil
}

func (w *Worker) loop(r run) {
	defer r.cleanup()
	log := w.e.log
	log.InfoContext(r.waitCtx, "worker started")
	idle, failures := 0, 0
	for {
		ran, err := w.round(r)
		if r.waitCtx.Err() != nil {
			log.InfoContext(r.parent, "worker stopped")
			return
		}
		var pause = w.e.o.Interval
		switch {
		case err != nil:
			pause = backoff(w.e.o.Interval, w.e.o.MaxBackoff, failures)
			failures, idle = failures+1, 0
			log.WarnContext(r.waitCtx, "round failed; backing off", "error", err, "wait", pause)
		case ran == 0:
			pause = backoff(w.e.o.Interval, w.e.o.MaxBackoff, idle)
			idle, failures = idle+1, 0
		default:
			idle, failures = 0, 0
		}
		if wait.Sleep(r.waitCtx, jitter(pause, w.e.o.Jitter)) != nil {
			log.InfoContext(r.parent, "worker stopped")
			return
		}
	}
}

// round holds the lock for one batch and returns how many jobs it ran.
func (w *Worker) round(r run) (int, error) {
	h := w.e.handler
	lock, err := h.GrabLock(r.waitCtx, w.e.store)
	if errors.Is(err, ErrLockBusy) {
		return 0, nil // another process is at it
	}
	if err != nil {
		return 0, err
	}
	defer w.e.release(r.waitCtx, lock)
	ran := 0
	for range w.e.o.MaxJobsPerBatch {
		if r.waitCtx.Err() != nil {
			return ran, nil
		}
		if err := lock.Check(r.waitCtx); err != nil {
			return ran, err
		}
		if err := w.e.awaitThrottle(r.waitCtx); err != nil {
			return ran, nil // stopped while throttled
		}
		job, err := h.FindJob(r.waitCtx, w.e.store)
		if errors.Is(err, ErrNoJobReady) || (err == nil && job == nil) {
			return ran, nil
		}
		if err != nil {
			return ran, fmt.Errorf("bbm: finding a job: %w", err)
		}
		ran++
		if err := h.ExecuteJob(r.jobCtx, w.e.store, job); err != nil {
			var je *JobError
			if errors.As(err, &je) && je.Terminal() {
				continue // the migration failed; the others go on
			}
			if errors.Is(err, ErrInvalidTransition) || errors.Is(err, ErrMigrationNotFound) {
				continue // paused since FindJob; it is skipped from now on
			}
			return ran, err
		}
	}
	return ran, nil
}
