package enqueuer

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
)

// startDone is the answer to one start of a stream.
type startDone struct {
	res startResult
	err error
}

// stream keeps up to n starts in flight, never more than the free
// capacity allows, until the deadline end, the feature flag, the registry
// (429, unreachable) or too many aborts stop it, or nothing is in flight
// and nothing more can start (the capacity is full, nothing is left, or
// the minimum wait between starts holds new ones back). Unlike a round
// (Start), it looks for freed capacity again after every answer and every
// Enqueuer.Wake, so a slow start never holds back the others.
func (r *Runner) stream(ctx context.Context, n int, end time.Time) error {
	var g errgroup.Group
	defer func() { _ = g.Wait() }() // every start has answered by then; this only makes it plain
	results := make(chan startDone)
	var (
		inflight int
		stopErr  error
		stop     StopReason
		last     Progress // the latest round of claims that found nothing to claim
	)
	for {
		if stopErr == nil && stop == "" {
			switch {
			case ctx.Err() != nil:
				stopErr = ctx.Err()
			case !r.Enabled(ctx):
				stop = StopDisabled
			case !r.Now().Before(end):
				stop = StopDeadline
			}
		}
		if stopErr == nil && stop == "" && inflight < n {
			room := n - inflight
			var round Progress
			claims, err := r.claimRound(ctx, room, min(room, finalBatch), &round)
			if err != nil {
				stopErr = err
			}
			for _, c := range claims {
				inflight++
				g.Go(func() error {
					res, err := r.startOne(ctx, c)
					results <- startDone{res: res, err: err}
					return nil
				})
			}
			if len(claims) == 0 {
				last = round
			}
		}
		if inflight == 0 {
			switch {
			case stopErr != nil:
				return stopErr
			case stop != "":
			case last.Free == 0:
				stop = StopCapacityFull
			case last.Throttled:
				stop = StopThrottled
			default:
				stop = StopNothingLeft
			}
			r.Stop(stop)
			return nil
		}
		// Wait for an answer, or for capacity to be freed elsewhere.
		wake, done := r.e.wake, ctx.Done()
		if stopErr != nil || stop != "" {
			wake, done = nil, nil // only the answers matter now
		}
		select {
		case d := <-results:
			inflight--
			if d.res == resultStop && stopErr == nil {
				stopErr = d.err
			}
			if err := r.checkAborts(); err != nil && stopErr == nil {
				stopErr = err
			}
		case <-wake:
		case <-done:
		}
	}
}
