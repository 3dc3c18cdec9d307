package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// Defaults of SchedulerOptions.
const (
	// DefaultSchedulerEvery is how often a Scheduler runs without being
	// kicked: the safety net for notifications that went to another
	// process and for stale imports.
	DefaultSchedulerEvery = 10 * time.Second
	// DefaultRetryHeld is how soon a Scheduler runs again after a run
	// found the lease held: the holder may be finishing and miss the
	// capacity that the kick was about.
	DefaultRetryHeld = time.Second
)

// Runnable is what a Scheduler runs: *Enqueuer, or a host's wrapper of it.
// When it also has a Wake method (as *Enqueuer does), every Kick calls it
// so that a run in progress notices freed capacity at once.
type Runnable interface {
	Run(ctx context.Context) (Report, error)
}

// SchedulerOptions configures NewScheduler. The zero value is ready to use.
type SchedulerOptions struct {
	// Every is the time between runs when nothing kicks. Default
	// DefaultSchedulerEvery.
	Every time.Duration
	// RetryHeld is how soon to run again after a run found the lease held
	// (once: a second held run waits for the next kick or tick). Default
	// DefaultRetryHeld; negative: never.
	RetryHeld time.Duration
	// OnRun, when set, is called after every run with its report and
	// error, in the scheduler's goroutine (keep it short).
	OnRun func(ctx context.Context, rep Report, err error)
	// Logger receives failed runs. Default: slog.Default().
	Logger *slog.Logger
}

// SchedulerStats counts what a Scheduler did.
type SchedulerStats struct {
	// Kicks counts Kick calls; Coalesced those that found a run already
	// pending and were folded into it.
	Kicks, Coalesced int64
	// Runs counts runs; Held those that found the lease held.
	Runs, Held int64
	// MaxInFlight is the most runs that were in progress at once (1 once
	// any ran: the scheduler never overlaps them).
	MaxInFlight int64
}

// Scheduler turns notifications, a periodic tick and manual kicks into
// runs, one at a time: at most one run is in progress and at most one more
// is pending, however many kicks arrive (they coalesce). It replaces the
// usual "start a goroutine per notification" wiring, where most runs
// would find the lease held and be dropped, with one goroutine: the one
// that calls Run.
//
//	sched, _ := enqueuer.NewScheduler(enq, enqueuer.SchedulerOptions{})
//	handler, _ := enqueuer.NewHandler(enqueuer.HandlerOptions{..., OnChange: sched.OnChange})
//	go sched.Run(ctx)
//
// Kick, OnChange and Stats are safe for concurrent use.
type Scheduler struct {
	r    Runnable
	opts SchedulerOptions

	kick     chan struct{} // the pending run; capacity 1
	shutdown chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when Run returns
	running  atomic.Bool

	kicks, coalesced, runs, held, inFlight, maxInFlight atomic.Int64
}

// NewScheduler returns a Scheduler of r.
func NewScheduler(r Runnable, opts SchedulerOptions) (*Scheduler, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: NewScheduler needs something to run", ErrConfig)
	}
	if opts.Every <= 0 {
		opts.Every = DefaultSchedulerEvery
	}
	if opts.RetryHeld == 0 {
		opts.RetryHeld = DefaultRetryHeld
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Scheduler{r: r, opts: opts, kick: make(chan struct{}, 1), shutdown: make(chan struct{}), done: make(chan struct{})}, nil
}

// Kick asks for a run soon. It never blocks and starts no goroutine: if a
// run is already pending, the kick is folded into it. It also wakes a run
// in progress (see Runnable).
func (s *Scheduler) Kick() {
	s.kicks.Add(1)
	if w, ok := s.r.(interface{ Wake() }); ok {
		w.Wake()
	}
	select {
	case s.kick <- struct{}{}:
	default:
		s.coalesced.Add(1)
	}
}

// OnChange kicks; its signature is HandlerOptions.OnChange's, so that
// every applied notification asks for a run.
func (s *Scheduler) OnChange(context.Context, Repository) { s.Kick() }

// Stats returns the counts so far.
func (s *Scheduler) Stats() SchedulerStats {
	return SchedulerStats{Kicks: s.kicks.Load(), Coalesced: s.coalesced.Load(), Runs: s.runs.Load(),
		Held: s.held.Load(), MaxInFlight: s.maxInFlight.Load()}
}

// Run runs at once, then after every kick and every Every, one run at a
// time, until ctx ends (it returns ctx's error) or Shutdown is called (it
// returns nil). A run in progress gets ctx: cancelling ctx cancels it, and
// Shutdown lets it finish. Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Scheduler.Run called twice", ErrConfig)
	}
	defer close(s.done)
	tick := time.NewTicker(s.opts.Every)
	defer tick.Stop()
	var retry *time.Timer
	retryC := func() <-chan time.Time {
		if retry == nil {
			return nil
		}
		return retry.C
	}
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	retried := false // the last run was itself a retry after ErrHeld
	for {
		select {
		case <-s.shutdown:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		isRetry := retried
		held := s.runOnce(ctx)
		retried = false
		if held && !isRetry && s.opts.RetryHeld > 0 {
			if retry == nil {
				retry = time.NewTimer(s.opts.RetryHeld)
			} else {
				retry.Reset(s.opts.RetryHeld)
			}
		}
		select {
		case <-s.shutdown:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-s.kick:
		case <-tick.C:
		case <-retryC():
			retried = true
		}
	}
}

// runOnce runs once and reports whether the lease was held.
func (s *Scheduler) runOnce(ctx context.Context) bool {
	n := s.inFlight.Add(1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	rep, err := s.r.Run(ctx)
	s.inFlight.Add(-1)
	s.runs.Add(1)
	held := errors.Is(err, lease.ErrHeld)
	switch {
	case held:
		s.held.Add(1)
	case err != nil && ctx.Err() == nil:
		s.opts.Logger.WarnContext(ctx, "enqueuer: scheduled run failed", "error", err, "stopped", rep.Stopped)
	}
	if s.opts.OnRun != nil {
		s.opts.OnRun(ctx, rep, err)
	}
	return held
}

// Shutdown stops scheduling runs and waits until the run in progress, if
// any, has finished and Run has returned, or until ctx ends. To also cut
// the run in progress short, cancel Run's context.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.shutdown) })
	if !s.running.Load() {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
