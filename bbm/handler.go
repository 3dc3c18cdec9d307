package bbm

import "context"

// Handler runs the two steps of a worker's job: find a job, execute it.
// The default Handler is the worker itself; set Options.Handler to wrap or
// replace a step. Each step gets the Store the worker uses, so a wrapper
// may also hand the inner step a decorated one.
type Handler interface {
	// FindJob returns the next job to run, with Job.Migration set: a job
	// of a failed migration that may still be retried first, then of
	// running and active migrations by ID (per their FailurePolicy, failed
	// jobs before or after new ranges). A new range has Job.ID 0. Migrations
	// whose Work the worker lacks are left alone. It finishes migrations
	// whose jobs are all done, and returns (nil, nil) when nothing is left,
	// or ErrNoJobReady when what is left runs elsewhere or waits.
	FindJob(ctx context.Context, store Store) (*Job, error)
	// ExecuteJob claims the job (counting the attempt before anything
	// runs; ErrBusy when the Parallelism budget is full), runs its Work
	// under the job timeout with the job's lease renewed, and records the
	// outcome. A failed attempt is a *JobError.
	ExecuteJob(ctx context.Context, store Store, job *Job) error
}
