package enqueuer

import (
	"context"
	"time"
)

// DefaultLoopDeadline bounds how long Loop and ParallelLoop keep a run
// going: well under the lease's ttl, and short enough that a job system
// does not take the run for stuck.
const DefaultLoopDeadline = 250 * time.Second

// Strategy decides how one Run fills the capacity, by calling the Runner's
// Start as often and with what width it sees fit. It returns the first
// error a Runner method returns (Run turns ErrTooManyImports and ErrTooEarly into a
// normal end) and records with Runner.Stop why it stopped. Hosts may write their
// own; Once, Loop and ParallelLoop are provided.
type Strategy interface {
	Fill(ctx context.Context, r *Runner) error
}

// Once starts at most one new import per run (plus any final imports that
// are due): the behaviour before loop mode, kept as a baseline. It needs
// many overlapping triggers to fill the capacity, and most of them find
// the lease held.
type Once struct{}

// Fill implements Strategy.
func (Once) Fill(ctx context.Context, r *Runner) error {
	if !r.Enabled(ctx) {
		r.Stop(StopDisabled)
		return nil
	}
	if _, err := r.Start(ctx, 1); err != nil {
		return err
	}
	r.Stop(StopOnce)
	return nil
}

// Loop starts imports one after the other inside one run, until the
// capacity is full, the deadline has passed, the feature flag is off, or
// nothing is left to start.
type Loop struct {
	// Deadline bounds the run, from its beginning. Default
	// DefaultLoopDeadline.
	Deadline time.Duration
}

// Fill implements Strategy.
func (s Loop) Fill(ctx context.Context, r *Runner) error {
	return fillLoop(ctx, r, s.Deadline, 1)
}

// ParallelLoop is Loop that keeps up to the whole free capacity starting
// at once: it claims that many repositories and asks the registry for all
// of them concurrently, and as soon as any answer comes back it looks for
// freed capacity again, without waiting for the slowest start of the
// round. Filling the capacity takes about one registry round trip, and a
// slot that a finished import frees while other starts are still in
// flight is refilled at once (when the notification wakes the run, see
// Enqueuer.Wake and Scheduler) or with the next answer.
type ParallelLoop struct {
	// Deadline bounds the run, from its beginning. Default
	// DefaultLoopDeadline.
	Deadline time.Duration
	// MaxConcurrency caps the registry calls in flight. Default 0: the
	// free capacity.
	MaxConcurrency int
}

// Fill implements Strategy.
func (s ParallelLoop) Fill(ctx context.Context, r *Runner) error {
	n := unlimited
	if s.MaxConcurrency > 0 {
		n = s.MaxConcurrency
	}
	return r.stream(ctx, n, r.Began().Add(orDefault(s.Deadline)))
}

func orDefault(deadline time.Duration) time.Duration {
	if deadline <= 0 {
		return DefaultLoopDeadline
	}
	return deadline
}

func fillLoop(ctx context.Context, r *Runner, deadline time.Duration, n int) error {
	end := r.Began().Add(orDefault(deadline))
	for {
		if !r.Enabled(ctx) {
			r.Stop(StopDisabled)
			return nil
		}
		p, err := r.Start(ctx, n)
		if err != nil {
			return err
		}
		if reason, stop := roundEnds(p, r.Now(), end); stop {
			r.Stop(reason)
			return nil
		}
	}
}

// roundEnds says whether a loop stops after round p, and why.
func roundEnds(p Progress, now, end time.Time) (StopReason, bool) {
	switch {
	case p.Free-p.Started <= 0:
		return StopCapacityFull, true
	case p.Throttled:
		return StopThrottled, true
	case p.Exhausted:
		return StopNothingLeft, true
	case !now.Before(end):
		return StopDeadline, true
	}
	return "", false
}
