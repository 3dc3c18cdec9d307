package sidekiqmove

import (
	"context"
	"time"
)

// Observer is told how a run goes, for progress lines, metrics and tracing.
// Calls come from the goroutine running Mover.Run, must be quick and must
// not block. Without Options.Observer nothing is called.
type Observer interface {
	// Progressed is called after every batch.
	Progressed(ctx context.Context, p Progress)
	// PassDone is called at the end of every pass over all sources.
	PassDone(ctx context.Context, p PassSummary)
}

// Progress is where a run stands after a batch.
type Progress struct {
	Pass   int    // 1-based
	Source string // the Redis key being scanned
	// Examined, Moved (or, in a dry run, that would move), Gone and
	// Malformed count jobs since the run began.
	Examined, Moved, Gone, Malformed int
	Elapsed                          time.Duration
}

// Rate returns the jobs moved per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Moved) / p.Elapsed.Seconds()
}

// PassSummary is what one pass over every source did.
type PassSummary struct {
	Pass          int
	Examined      int
	Moved         int // or, in a dry run, that would move
	Gone          int
	Conflicts     int
	Malformed     int
	Duration      time.Duration
	NothingToMove bool // the pass found no job to move: the run is done
}
