package bbm

import (
	"log/slog"
	"time"
)

// Options configures SyncWorker and Worker. The zero value gives the
// documented defaults; fields that only one of them uses say so.
type Options struct {
	// Store holds migrations and jobs. Default:
	// NewPostgresStore(db, PostgresStoreOptions{}).
	Store Store
	// Catalog validates target tables and finds NULL batches. Default:
	// NewPostgresCatalog(db).
	Catalog Catalog
	// Handler runs the two steps of a job. Default: the worker itself.
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
	// Throttler is asked before each job whether to hold off. Default,
	// with a database: a HealthThrottler with Health's bounds (replica
	// lag, lock waits, optionally WAL rate); without one, none.
	Throttler Throttler
	// Health tunes the default Throttler; Health.Off turns it off.
	Health HealthOptions

	// Parallelism bounds the jobs that run at once, across every process,
	// among the migrations whose Work this worker has registered: N jobs
	// of one migration, or jobs of different migrations. Each worker also
	// runs up to Parallelism jobs itself (one goroutine each), so one
	// process alone can use the whole budget. Workers of hosts with
	// different Work do not share a budget. Default 1: one job at a time.
	//
	// Each running job holds a connection of the worker's database for its
	// transaction, and lease renewals need one more, so the pool must open
	// more than Parallelism connections (a pgx pool's MaxConns defaults to
	// max(4, CPUs)); otherwise Run fails with ErrPoolTooSmall instead of
	// letting every job's lease expire while renewals wait for a
	// connection. Unbounded or unknown pools are not checked.
	Parallelism int
	// JobTimeout bounds one attempt of a job; the Work's context is
	// cancelled after it and the attempt counts as failed. Default 2m.
	JobTimeout time.Duration
	// JobLease is how long a running job stays claimed without its worker
	// renewing the claim; the worker renews it every JobLease/3 while the
	// job runs, so a job whose worker died is taken over within about
	// JobLease. Default 15s.
	JobLease time.Duration
	// MaxJobAttempts is how many attempts a job gets (see FailurePolicy
	// for what happens after the last one). Default 5.
	MaxJobAttempts int
	// RetryBackoff is the wait after a failed attempt before the job is
	// tried again; it doubles with each attempt up to MaxRetryBackoff.
	// Defaults 1s and 1m.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// Adaptive tunes the batch size of new jobs toward a target duration.
	// Default: on, aiming at DefaultTargetJobDuration per job within
	// BatchSize/10..BatchSize*10; set Adaptive.Off for fixed sizes.
	Adaptive AdaptiveOptions
	// BatchPause is a fixed pause after every job, on top of the adaptive
	// pacing. Default 0: no pause.
	BatchPause time.Duration
	// MaxOutage (SyncWorker) is how long Run rides out a database it
	// cannot reach (or errors it cannot tell from one), retrying with
	// backoff, before it gives up with the last error. Default 5m.
	MaxOutage time.Duration

	// Interval is the first wait when there is nothing to do now (no
	// migration, jobs running elsewhere, the Parallelism budget full), which
	// then doubles up to MaxBackoff, as it does after errors. Default 1s.
	Interval time.Duration
	// MaxBackoff caps the waits after idle or failing batches. Default 1m.
	MaxBackoff time.Duration
	// Jitter is the fraction by which each wait varies at random,
	// so that processes started together do not poll together. Default
	// 0.2; negative for none.
	Jitter float64
}

// Defaults.
const (
	DefaultParallelism       = 1
	DefaultJobTimeout        = 2 * time.Minute
	DefaultJobLease          = 15 * time.Second
	DefaultMaxJobAttempts    = 5
	DefaultRetryBackoff      = time.Second
	DefaultMaxRetryBackoff   = time.Minute
	DefaultTargetJobDuration = 500 * time.Millisecond
	DefaultMaxOutage         = 5 * time.Minute
	DefaultInterval          = time.Second
	DefaultMaxBackoff        = time.Minute
	DefaultJitter            = 0.2
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
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.MaxJobAttempts <= 0 {
		o.MaxJobAttempts = DefaultMaxJobAttempts
	}
	setDur(&o.JobTimeout, DefaultJobTimeout)
	setDur(&o.JobLease, DefaultJobLease)
	setDur(&o.RetryBackoff, DefaultRetryBackoff)
	setDur(&o.MaxRetryBackoff, DefaultMaxRetryBackoff)
	setDur(&o.MaxOutage, DefaultMaxOutage)
	setDur(&o.Interval, DefaultInterval)
	setDur(&o.MaxBackoff, DefaultMaxBackoff)
	o.BatchPause = max(o.BatchPause, 0)
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
