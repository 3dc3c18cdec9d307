package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
)

// enqueueLoop triggers enqueuer runs through an enqueuer.Scheduler: every
// interval, and after each notification that changed a repository (the
// capacity grew, or a final import is due). Notifications that arrive
// during a run are coalesced into one more run; one goroutine runs them.
type enqueueLoop struct {
	sched  *enqueuer.Scheduler
	logger *slog.Logger

	runs    atomic.Int64
	started atomic.Int64 // imports started, final ones included
}

// countedEnqueuer counts every run as a job of its queue; Wake comes with
// the embedded Enqueuer, so kicks still wake a run in progress.
type countedEnqueuer struct {
	*enqueuer.Enqueuer
	queues *queues
}

func (c countedEnqueuer) Run(ctx context.Context) (enqueuer.Report, error) {
	c.queues.count(kindEnqueue)
	return c.Enqueuer.Run(ctx)
}

func newEnqueueLoop(enq *enqueuer.Enqueuer, every time.Duration, q *queues, logger *slog.Logger) (*enqueueLoop, error) {
	l := &enqueueLoop{logger: logger}
	var err error
	l.sched, err = enqueuer.NewScheduler(countedEnqueuer{Enqueuer: enq, queues: q},
		enqueuer.SchedulerOptions{Every: every, Logger: logger, OnRun: l.ran})
	return l, err
}

// ran logs what a run did.
func (l *enqueueLoop) ran(ctx context.Context, rep enqueuer.Report, err error) {
	l.runs.Add(1)
	l.started.Add(int64(len(rep.Started)))
	switch {
	case errors.Is(err, lease.ErrHeld):
		l.logger.InfoContext(ctx, "registryhost: another instance runs the enqueuer", "error", err)
	case err != nil:
		l.logger.WarnContext(ctx, "registryhost: enqueuer run failed", "error", err, "stopped", rep.Stopped)
	case len(rep.Started)+len(rep.Aborted)+len(rep.Skipped)+len(rep.Finished)+len(rep.Reconciled) > 0:
		l.logger.InfoContext(ctx, "registryhost: enqueuer run", "started", len(rep.Started),
			"final", rep.Count(enqueuer.ImportFinal), "aborted", len(rep.Aborted), "skipped", len(rep.Skipped),
			"reconciled", len(rep.Reconciled), "stopped", rep.Stopped, "duration", rep.Duration.Round(time.Millisecond))
	}
}

// run runs the scheduler until stop ends. Each run gets hard, so that a
// graceful shutdown lets the run in progress finish: the enqueuer's
// feature flag (Config.Enabled, wired to stop) makes it start nothing more.
func (l *enqueueLoop) run(stop, hard context.Context) {
	go func() {
		<-stop.Done()
		_ = l.sched.Shutdown(hard)
	}()
	_ = l.sched.Run(hard)
}
