package bbm

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/observe"
)

// Observer is told what workers do, for metrics and tracing; bbm itself
// depends on no metrics library (package prommetrics implements it with
// Prometheus). Calls are made synchronously from the worker's goroutine,
// so they should be quick and must not block. A worker without an
// Observer pays one call to an empty method per event.
type Observer interface {
	// JobStarted is called after an attempt was claimed, before Work.Do.
	JobStarted(ctx context.Context, e JobEvent)
	// JobFinished is called once for every JobStarted, after the
	// attempt's outcome was recorded (or recording it failed).
	JobFinished(ctx context.Context, e JobEvent)
	// Throttled is called each time the Throttler says hold.
	Throttled(ctx context.Context, e ThrottleEvent)
	// MigrationDone is called when a worker finishes or fails a migration.
	MigrationDone(ctx context.Context, m *Migration)
}

// JobEvent describes one attempt of a job.
type JobEvent struct {
	Migration   string
	MigrationID int64
	JobID       int64
	Start       Key
	End         Key
	Attempt     int
	BatchSize   int
	// Rows is how many rows the job's range had when it was cut;
	// Rows/Duration is the job's rate.
	Rows int64
	// Duration (JobFinished) is how long the Work's transaction ran, from
	// begin to commit or rollback.
	Duration time.Duration
	// Err (JobFinished) is nil on success, else a *JobError, or the error
	// of recording the outcome when that failed (the attempt then runs
	// again once its lease expires).
	Err error
	// NextBatchSize (JobFinished) is the size the next new job of the
	// migration will get.
	NextBatchSize int
}

// ThrottleEvent describes a hold.
type ThrottleEvent struct {
	Reason string
	Wait   time.Duration
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped.
type ObserverFuncs struct {
	OnJobStarted    func(ctx context.Context, e JobEvent)
	OnJobFinished   func(ctx context.Context, e JobEvent)
	OnThrottled     func(ctx context.Context, e ThrottleEvent)
	OnMigrationDone func(ctx context.Context, m *Migration)
}

var _ Observer = ObserverFuncs{}

// JobStarted implements Observer.
func (o ObserverFuncs) JobStarted(ctx context.Context, e JobEvent) {
	if o.OnJobStarted != nil {
		o.OnJobStarted(ctx, e)
	}
}

// JobFinished implements Observer.
func (o ObserverFuncs) JobFinished(ctx context.Context, e JobEvent) {
	if o.OnJobFinished != nil {
		o.OnJobFinished(ctx, e)
	}
}

// Throttled implements Observer.
func (o ObserverFuncs) Throttled(ctx context.Context, e ThrottleEvent) {
	if o.OnThrottled != nil {
		o.OnThrottled(ctx, e)
	}
}

// MigrationDone implements Observer.
func (o ObserverFuncs) MigrationDone(ctx context.Context, m *Migration) {
	if o.OnMigrationDone != nil {
		o.OnMigrationDone(ctx, m)
	}
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. It lets a host keep its own Observer next to a
// metrics one.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) JobStarted(ctx context.Context, e JobEvent) {
	for _, o := range m {
		o.JobStarted(ctx, e)
	}
}

func (m multiObserver) JobFinished(ctx context.Context, e JobEvent) {
	for _, o := range m {
		o.JobFinished(ctx, e)
	}
}

func (m multiObserver) Throttled(ctx context.Context, e ThrottleEvent) {
	for _, o := range m {
		o.Throttled(ctx, e)
	}
}

func (m multiObserver) MigrationDone(ctx context.Context, mg *Migration) {
	for _, o := range m {
		o.MigrationDone(ctx, mg)
	}
}
