package sidekiqmove

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/observe"
)

// Observer is told how a run goes, for progress lines, metrics and tracing.
// Calls come from the goroutine running Mover.Run, must be quick and must
// not block. Without Options.Observer nothing is called.
//
// Hooks follow pgx's tracer shape, like every Ferry package's: a pass gets
// PassStart, whose returned context the pass's Redis calls run under (a
// span started there is the parent of a Redis tracer's spans), and
// PassEnd, called once with that context; progress after a batch is a
// single call.
type Observer interface {
	// PassStart is called when a pass over all sources begins; the pass
	// runs under the context it returns.
	PassStart(ctx context.Context, e PassStartEvent) context.Context
	// Progressed is called after every batch.
	Progressed(ctx context.Context, p Progress)
	// PassEnd is called at the end of every pass, also one a Redis error
	// ended (PassSummary.Err), with the context PassStart returned.
	PassEnd(ctx context.Context, p PassSummary)
}

// PassStartEvent describes a pass about to begin.
type PassStartEvent struct {
	Pass int // 1-based
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
	// Err is the Redis error that ended the pass (and the run), if any;
	// the counts are then those of the pass so far.
	Err error
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped (a nil OnPassStart returns its context). The zero value
// observes nothing.
type ObserverFuncs struct {
	OnPassStart  func(ctx context.Context, e PassStartEvent) context.Context
	OnProgressed func(ctx context.Context, p Progress)
	OnPassEnd    func(ctx context.Context, p PassSummary)
}

var _ Observer = ObserverFuncs{}

// PassStart implements Observer.
func (o ObserverFuncs) PassStart(ctx context.Context, e PassStartEvent) context.Context {
	return observe.CallStart(o.OnPassStart, ctx, e)
}

// Progressed implements Observer.
func (o ObserverFuncs) Progressed(ctx context.Context, p Progress) {
	observe.Call(o.OnProgressed, ctx, p)
}

// PassEnd implements Observer.
func (o ObserverFuncs) PassEnd(ctx context.Context, p PassSummary) {
	observe.Call(o.OnPassEnd, ctx, p)
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. PassStart hooks run in order, each under the context
// the previous one returned; PassEnd hooks run in reverse order, each with
// the context its own PassStart returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) PassStart(ctx context.Context, e PassStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.PassStart(ctx, e) })
}

func (m multiObserver) Progressed(ctx context.Context, p Progress) {
	for _, o := range m {
		o.Progressed(ctx, p)
	}
}

func (m multiObserver) PassEnd(ctx context.Context, p PassSummary) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.PassEnd(ctx, p) })
}
