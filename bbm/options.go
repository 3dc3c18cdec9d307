package bbm

import (
	"log/slog"
	"time"
)

// Options configures SyncWorker and Worker. The zero value gives the
// documented defaults; fields that only one of them uses say so.
type Options struct {
	// Store holds migrations, jobs and the worker lock. Default:
	// NewPostgresStore(db, PostgresStoreOptions{}).
	Store Store
	// Catalog validates target tables and finds NULL batches. Default:
	// NewPostgresCatalog(db).
	Catalog Catalog
	// Handler runs the three steps of a batch. Default: the worker itself.
	// Set it to wrap or replace a step (for example to add tracing);
	// a wrapper usually holds the worker and calls its methods.
	Handler Handler
	// Logger receives one line per job and per state change, with the
	// keys migration, job, start, end, attempt and duration. Default:
	// slog.Default().
	Logger *slog.Logger
	// Observer is told about jobs, throttling and finished migrations, for
	// metrics and tracing (see prommetrics; MultiObserver combines
	// several). Default: none (an empty ObserverFuncs).
	Observer Observer
	// Throttler is asked before each job whether to hold off (for example
	// while replicas lag). Default: none.
	Throttler Throttler

	// MaxJobsPerBatch is how many jobs run under one hold of the worker
	// lock before it is released. Default 5.
	MaxJobsPerBatch int
	// BatchTimeout stops starting jobs under one hold of the lock after
	// this long; the job running then is not interrupted. Default 10m.
	BatchTimeout time.Duration
	// JobTimeout bounds one attempt of a job; the Work's context is
	// cancelled after it and the attempt counts as failed. Default 2m.
	JobTimeout time.Duration
	// LeaseGrace is added to JobTimeout to give a job's lease: a job still
	// running after its lease belonged to a worker that died, and is
	// taken over. Default 30s.
	LeaseGrace time.Duration
	// MaxJobAttempts is how many attempts a job gets; when the last one
	// fails the migration fails with CodeMaxJobAttemptsReached. Default 5.
	MaxJobAttempts int
	// RetryBackoff is the wait after a failed attempt before the job is
	// tried again; it doubles with each attempt up to MaxRetryBackoff.
	// Defaults 1s and 1m.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// Adaptive tunes the batch size of new jobs toward a target duration.
	// Default: off (every job has the migration's batch size).
	Adaptive AdaptiveOptions

	// LockWaitTimeout (SyncWorker) bounds the wait for the worker lock;
	// Run returns ErrLockBusy after it. Default 1m.
	LockWaitTimeout time.Duration
	// BatchPause (SyncWorker) is the mean pause between batches, to leave
	// the database room for other work; each pause is random in
	// [BatchPause/2, 3*BatchPause/2]. Default 1s; negative for none.
	BatchPause time.Duration

	// Interval (Worker) is the wait between batches while there is work;
	// it is also the first wait when there is none, which then doubles up
	// to MaxBackoff (as it does after errors). SyncWorker uses the same
	// rule while it waits for jobs running elsewhere. Default 1s.
	Interval time.Duration
	// MaxBackoff caps the waits after idle or failing batches. Default 1m.
	MaxBackoff time.Duration
	// Jitter is the fraction by which each Worker wait varies at random,
	// so that processes started together do not poll together. Default
	// 0.2; negative for none.
	Jitter float64
}

// Defaults.
const (
	DefaultMaxJobsPerBatch = 5
	DefaultBatchTimeout    = 10 * time.Minute
	DefaultJobTimeout      = 2 * time.Minute
	DefaultLeaseGrace      = 30 * time.Second
	DefaultMaxJobAttempts  = 5
	DefaultRetryBackoff    = time.Second
	DefaultMaxRetryBackoff = time.Minute
	DefaultLockWaitTimeout = time.Minute
	DefaultBatchPause      = time.Second
	DefaultInterval        = time.Second
	DefaultMaxBackoff      = time.Minute
	DefaultJitter          = 0.2
)

func (o Options) withDefaults() Options {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxJobsPerBatch <= 0 {
		o.MaxJobsPerBatch = DefaultMaxJobsPerBatch
	}
	if o.MaxJobAttempts <= 0 {
		o.MaxJobAttempts = DefaultMaxJobAttempts
	}
	setDur(&o.BatchTimeout, DefaultBatchTimeout)
	setDur(&o.JobTimeout, DefaultJobTimeout)
	setDur(&o.LeaseGrace, DefaultLeaseGrace)
	setDur(&o.RetryBackoff, DefaultRetryBackoff)
	setDur(&o.MaxRetryBackoff, DefaultMaxRetryBackoff)
	setDur(&o.LockWaitTimeout, DefaultLockWaitTimeout)
	setDur(&o.Interval, DefaultInterval)
	setDur(&o.MaxBackoff, DefaultMaxBackoff)
	switch {
	case o.BatchPause == 0:
		o.BatchPause = DefaultBatchPause
	case o.BatchPause < 0:
		o.BatchPause = 0
	}
	switch {
	case o.Jitter == 0:
		o.Jitter = DefaultJitter
	case o.Jitter < 0:
		o.Jitter = 0
	case o.Jitter > 1:
		o.Jitter = 1
	}
	o.Adaptive = o.Adaptive.withDefaults()
	return o
}
