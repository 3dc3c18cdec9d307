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
//
// Hooks follow pgx's tracer shape, like every Ferry package's: a job
// attempt gets JobStart, whose returned context the attempt runs under
// (the Work's Do and the recording of its outcome: a span started in
// JobStart is the parent of the spans the Work makes), and JobEnd, called
// once with that context; holds and a migration's end are single calls.
type Observer interface {
	// JobStart is called after an attempt was claimed, before Work.Do;
	// the attempt runs under the context it returns.
	JobStart(ctx context.Context, e JobStartEvent) context.Context
	// JobEnd is called once for every JobStart, with the context it
	// returned, after the attempt's outcome was recorded (or recording it
	// failed).
	JobEnd(ctx context.Context, e JobEvent)
	// Throttled is called each time the Throttler says hold.
	Throttled(ctx context.Context, e ThrottleEvent)
	// MigrationEnded is called when a worker finishes or fails a
	// migration.
	MigrationEnded(ctx context.Context, m *Migration)
}

// JobStartEvent describes an attempt of a job about to run.
type JobStartEvent struct {
	Migration   string
	MigrationID int64
	JobID       int64
	Start       Key
	End         Key
	Attempt     int
	BatchSize   int
	// Rows is how many rows the job's range had when it was cut.
	Rows int64
}

// JobEvent describes one attempt of a job that ended: the JobStartEvent
// it began with, and its outcome. Rows/Duration is the job's rate.
type JobEvent struct {
	JobStartEvent
	// Duration is how long the Work's transaction ran, from begin to
	// commit or rollback.
	Duration time.Duration
	// Err is nil on success, else a *JobError, or the error of recording
	// the outcome when that failed (the attempt then runs again once its
	// lease expires).
	Err error
	// NextBatchSize is the size the next new job of the migration will
	// get.
	NextBatchSize int
}

// ThrottleEvent describes a hold.
type ThrottleEvent struct {
	Reason string
	Wait   time.Duration
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped (a nil OnJobStart returns its context).
type ObserverFuncs struct {
	OnJobStart       func(ctx context.Context, e JobStartEvent) context.Context
	OnJobEnd         func(ctx context.Context, e JobEvent)
	OnThrottled      func(ctx context.Context, e ThrottleEvent)
	OnMigrationEnded func(ctx context.Context, m *Migration)
}

var _ Observer = ObserverFuncs{}

// JobStart implements Observer.
func (o ObserverFuncs) JobStart(ctx context.Context, e JobStartEvent) context.Context {
	return observe.CallStart(o.OnJobStart, ctx, e)
}

// JobEnd implements Observer.
func (o ObserverFuncs) JobEnd(ctx context.Context, e JobEvent) {
	observe.Call(o.OnJobEnd, ctx, e)
}

// Throttled implements Observer.
func (o ObserverFuncs) Throttled(ctx context.Context, e ThrottleEvent) {
	observe.Call(o.OnThrottled, ctx, e)
}

// MigrationEnded implements Observer.
func (o ObserverFuncs) MigrationEnded(ctx context.Context, m *Migration) {
	observe.Call(o.OnMigrationEnded, ctx, m)
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. It lets a host keep its own Observer next to a
// metrics one. JobStart hooks run in order, each under the context the
// previous one returned; JobEnd hooks run in reverse order, each with the
// context its own JobStart returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) JobStart(ctx context.Context, e JobStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.JobStart(ctx, e) })
}

func (m multiObserver) JobEnd(ctx context.Context, e JobEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.JobEnd(ctx, e) })
}

func (m multiObserver) Throttled(ctx context.Context, e ThrottleEvent) {
	for _, o := range m {
		o.Throttled(ctx, e)
	}
}

func (m multiObserver) MigrationEnded(ctx context.Context, mg *Migration) {
	for _, o := range m {
		o.MigrationEnded(ctx, mg)
	}
}
