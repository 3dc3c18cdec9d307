package bbm

import "context"

// Handler runs the three steps of a worker's batch: take the worker lock,
// find a job, execute it. The default Handler is the worker itself; set
// Options.Handler to wrap or replace a step. Each step gets the Store the
// worker uses, so a wrapper may also hand the inner step a decorated one.
type Handler interface {
	// GrabLock takes the worker lock: SyncWorker waits for it (up to the
	// deadline of ctx), Worker only tries.
	GrabLock(ctx context.Context, store Store) (Lock, error)
	// FindJob returns the next job to run, with Job.Migration set: a job
	// of a failed migration that may still be retried first, then of
	// running and active migrations by ID, their failed jobs before new
	// ranges. A new range has Job.ID 0. It finishes migrations whose jobs
	// are all done and returns (nil, nil) when nothing is left, or
	// ErrNoJobReady when what is left runs elsewhere.
	FindJob(ctx context.Context, store Store) (*Job, error)
	// ExecuteJob claims the job (counting the attempt before anything
	// runs), runs its Work in a transaction under the job timeout, and
	// records the outcome. A failed attempt is a *JobError.
	ExecuteJob(ctx context.Context, store Store, job *Job) error
}
