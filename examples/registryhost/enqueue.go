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

// enqueueLoop triggers enqueuer runs, as a job system would: every
// interval, and at once after a notification changed a repository (the
// capacity grew, or a final import is due). Triggers that arrive during a
// run are coalesced into one more run.
type enqueueLoop struct {
	enq     *enqueuer.Enqueuer
	every   time.Duration
	queues  *queues
	logger  *slog.Logger
	trigger chan struct{}

	runs    atomic.Int64
	started atomic.Int64 // imports started, final ones included
}

func newEnqueueLoop(enq *enqueuer.Enqueuer, every time.Duration, q *queues, logger *slog.Logger) *enqueueLoop {
	return &enqueueLoop{enq: enq, every: every, queues: q, logger: logger, trigger: make(chan struct{}, 1)}
}

// poke asks for a run soon; it never blocks.
func (l *enqueueLoop) poke() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// run runs the enqueuer until stop ends. Each run gets hard, so that a
// graceful shutdown lets the run in progress finish: the enqueuer's
// feature flag (Config.Enabled, wired to stop) makes it start nothing more.
func (l *enqueueLoop) run(stop, hard context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for stop.Err() == nil {
		l.queues.count(kindEnqueue)
		rep, err := l.enq.Run(hard)
		l.runs.Add(1)
		l.started.Add(int64(len(rep.Started)))
		switch {
		case errors.Is(err, lease.ErrHeld):
			l.logger.InfoContext(hard, "registryhost: another instance runs the enqueuer", "error", err)
		case err != nil:
			l.logger.WarnContext(hard, "registryhost: enqueuer run failed", "error", err, "stopped", rep.Stopped)
		case len(rep.Started)+len(rep.Aborted)+len(rep.Skipped)+len(rep.Finished) > 0:
			l.logger.InfoContext(hard, "registryhost: enqueuer run", "started", len(rep.Started),
				"final", rep.Count(enqueuer.ImportFinal), "aborted", len(rep.Aborted), "skipped", len(rep.Skipped),
				"stopped", rep.Stopped, "duration", rep.Duration.Round(time.Millisecond))
		}
		select {
		case <-stop.Done():
		case <-t.C:
		case <-l.trigger:
		}
	}
}
