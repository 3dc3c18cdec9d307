package bbm

import (
	"context"
	"sync"
	"time"

	"github.com/ferryhq/ferry/storage"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"
)

// Worker runs migrations in the background of a long-running process. It
// runs up to Options.Parallelism jobs at once (the budget is shared with
// every worker of the same Work, across processes), one after the other,
// paced by database health. When it finds nothing to do (no migration, the
// budget full, jobs running elsewhere) or a step fails, it waits Interval
// (with jitter), doubling up to MaxBackoff; a job that ran resets the wait.
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
func NewWorker(db storage.Handle, opts Options) *Worker {
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

// LeftAlone names the migrations this worker met and left alone because
// their Work is not registered on it; each is also logged once.
func (w *Worker) LeftAlone() []string { return w.e.leftAloneNames() }

func (w *Worker) loop(r run) {
	defer r.cleanup()
	log := w.e.log
	log.InfoContext(r.waitCtx, "worker started", "parallelism", w.e.o.Parallelism)
	var wg sync.WaitGroup
	for range w.e.o.Parallelism {
		wg.Go(func() { w.slot(r) })
	}
	wg.Wait()
	log.InfoContext(r.parent, "worker stopped")
}

// slot runs jobs one after the other until the worker stops.
func (w *Worker) slot(r run) {
	idle, failures := 0, 0
	for {
		res, err := w.e.step(r.waitCtx, r.jobCtx)
		if r.waitCtx.Err() != nil {
			return
		}
		var pause time.Duration
		switch {
		case err != nil:
			pause = w.e.backoff(failures)
			failures, idle = failures+1, 0
			w.e.log.WarnContext(r.waitCtx, "step failed; backing off", "error", err, "wait", pause)
		case res == stepBusy:
			pause = w.e.o.Interval // a place frees up when any job ends
		case res == stepDone || res == stepWait:
			pause = w.e.backoff(idle)
			idle, failures = idle+1, 0
		default:
			idle, failures = 0, 0
			continue
		}
		if wait.Sleep(r.waitCtx, backoff.Spread(pause, w.e.o.Jitter)) != nil {
			return
		}
	}
}
