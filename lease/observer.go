package lease

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ferryhq/ferry/internal/observe"
)

// Observer is told what leases do, for metrics and tracing; lease itself
// depends on no metrics library (package prommetrics implements it with
// Prometheus). Observe attaches one to any Locker; pglease.FenceWith and
// hosts' own fencing code report fence checks to it. Calls are made
// synchronously, often concurrently (Guard renews in a goroutine of its
// own), so they must be quick, safe for concurrent use and must not block.
//
// Hooks follow pgx's tracer shape: an operation that takes time (Acquire,
// Renew) gets XStart, whose returned context the operation runs under (a
// span started there is the parent of the backend's own spans), and XEnd,
// called once with that context when the operation returns; events without
// a duration are single calls.
type Observer interface {
	// AcquireStart is called before every Acquire; the Acquire runs under
	// the context it returns.
	AcquireStart(ctx context.Context, e AcquireStartEvent) context.Context
	// AcquireEnd is called after every Acquire, whatever its outcome, with
	// the context AcquireStart returned.
	AcquireEnd(ctx context.Context, e AcquireEvent)
	// RenewStart is called before every Renew of an acquired lease; the
	// Renew runs under the context it returns.
	RenewStart(ctx context.Context, e RenewStartEvent) context.Context
	// RenewEnd is called after every Renew, with the context RenewStart
	// returned.
	RenewEnd(ctx context.Context, e RenewEvent)
	// LeaseEnded is called once per acquired lease, when this process
	// stops holding it: at its Release (whatever the outcome), or at the
	// first Renew that finds it lost.
	LeaseEnded(ctx context.Context, e EndEvent)
	// FenceChecked is called after a fence check (pglease.FenceWith, or a
	// host's own fencing).
	FenceChecked(ctx context.Context, e FenceEvent)
}

// AcquireResult classifies an Acquire. There are no others, so they are
// safe as metric label values.
type AcquireResult string

// The outcomes of an Acquire.
const (
	// Acquired: the lease was granted.
	Acquired AcquireResult = "acquired"
	// AcquireHeld: another holder has the key (ErrHeld).
	AcquireHeld AcquireResult = "held"
	// AcquireFailed: the store failed or the arguments were invalid.
	AcquireFailed AcquireResult = "error"
)

// AcquireStartEvent describes an Acquire about to run.
type AcquireStartEvent struct {
	Key string
	TTL time.Duration
}

// RenewStartEvent describes a Renew about to run.
type RenewStartEvent struct {
	Key   string
	Token int64
}

// AcquireEvent describes one Acquire that returned.
type AcquireEvent struct {
	Key    string
	Result AcquireResult
	// Token is the new lease's fencing token when Result is Acquired.
	Token int64
	// Duration is how long Acquire took.
	Duration time.Duration
	// Err is Acquire's error (nil when Acquired).
	Err error
}

// RenewEvent describes one Renew that returned.
type RenewEvent struct {
	Key      string
	Token    int64
	Duration time.Duration
	// Err is Renew's error: it wraps ErrLost when the lease was lost; any
	// other error left the lease as it was.
	Err error
}

// EndReason says how this process stopped holding a lease. There are no
// others, so they are safe as metric label values.
type EndReason string

// How a lease ends.
const (
	// EndReleased: Release succeeded.
	EndReleased EndReason = "released"
	// EndLost: Renew or Release found the lease lost: it expired or
	// another holder took the key.
	EndLost EndReason = "lost"
	// EndReleaseFailed: Release failed (the store could not be reached);
	// the lease stays in the store until it expires.
	EndReleaseFailed EndReason = "release_failed"
)

// EndEvent describes the end of a lease.
type EndEvent struct {
	Key    string
	Token  int64
	Reason EndReason
	// Held is how long the process held the lease: from the end of the
	// Acquire to the Release, or to the Renew that found it lost.
	Held time.Duration
	// Err is the error of the Release or Renew that ended it, if any.
	Err error
}

// FenceEvent describes one fence check.
type FenceEvent struct {
	Key   string
	Token int64
	// Err is nil when the token was current, wraps ErrFenced when the
	// write was refused, and is another error when the check failed.
	Err error
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped. The zero value observes nothing.
type ObserverFuncs struct {
	OnAcquireStart func(ctx context.Context, e AcquireStartEvent) context.Context
	OnAcquireEnd   func(ctx context.Context, e AcquireEvent)
	OnRenewStart   func(ctx context.Context, e RenewStartEvent) context.Context
	OnRenewEnd     func(ctx context.Context, e RenewEvent)
	OnLeaseEnded   func(ctx context.Context, e EndEvent)
	OnFenceChecked func(ctx context.Context, e FenceEvent)
}

var _ Observer = ObserverFuncs{}

// AcquireStart implements Observer.
func (o ObserverFuncs) AcquireStart(ctx context.Context, e AcquireStartEvent) context.Context {
	return observe.CallStart(o.OnAcquireStart, ctx, e)
}

// AcquireEnd implements Observer.
func (o ObserverFuncs) AcquireEnd(ctx context.Context, e AcquireEvent) {
	observe.Call(o.OnAcquireEnd, ctx, e)
}

// RenewStart implements Observer.
func (o ObserverFuncs) RenewStart(ctx context.Context, e RenewStartEvent) context.Context {
	return observe.CallStart(o.OnRenewStart, ctx, e)
}

// RenewEnd implements Observer.
func (o ObserverFuncs) RenewEnd(ctx context.Context, e RenewEvent) {
	observe.Call(o.OnRenewEnd, ctx, e)
}

// LeaseEnded implements Observer.
func (o ObserverFuncs) LeaseEnded(ctx context.Context, e EndEvent) {
	observe.Call(o.OnLeaseEnded, ctx, e)
}

// FenceChecked implements Observer.
func (o ObserverFuncs) FenceChecked(ctx context.Context, e FenceEvent) {
	observe.Call(o.OnFenceChecked, ctx, e)
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. Start hooks run in order, each under the context the
// previous one returned; End hooks run in reverse order, each with the
// context its own Start returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) AcquireStart(ctx context.Context, e AcquireStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.AcquireStart(ctx, e) })
}

func (m multiObserver) AcquireEnd(ctx context.Context, e AcquireEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.AcquireEnd(ctx, e) })
}

func (m multiObserver) RenewStart(ctx context.Context, e RenewStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.RenewStart(ctx, e) })
}

func (m multiObserver) RenewEnd(ctx context.Context, e RenewEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.RenewEnd(ctx, e) })
}

func (m multiObserver) LeaseEnded(ctx context.Context, e EndEvent) {
	for _, o := range m {
		o.LeaseEnded(ctx, e)
	}
}

func (m multiObserver) FenceChecked(ctx context.Context, e FenceEvent) {
	for _, o := range m {
		o.FenceChecked(ctx, e)
	}
}

// Observe returns a Locker that acquires through l and reports every
// Acquire, and the Renew and Release of every lease it hands out, to obs.
// It works with any backend (pglease, redislease, leasetest, a host's own);
// pass it wherever a Locker goes (Guard, Wait, enqueuer.Config.Locker).
// With a nil obs it returns l itself.
func Observe(l Locker, obs Observer) Locker {
	if obs == nil {
		return l
	}
	return &observedLocker{l: l, obs: obs}
}

type observedLocker struct {
	l   Locker
	obs Observer
}

func (o *observedLocker) Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	ctx = o.obs.AcquireStart(ctx, AcquireStartEvent{Key: key, TTL: ttl})
	began := time.Now() // the Acquire's own time, not the observer's
	l, err := o.l.Acquire(ctx, key, ttl)
	ev := AcquireEvent{Key: key, Result: Acquired, Duration: time.Since(began), Err: err}
	switch {
	case errors.Is(err, ErrHeld):
		ev.Result = AcquireHeld
	case err != nil:
		ev.Result = AcquireFailed
	default:
		ev.Token = l.Token()
	}
	o.obs.AcquireEnd(ctx, ev)
	if err != nil {
		return nil, err
	}
	return &observedLease{Lease: l, obs: o.obs, acquired: time.Now()}, nil
}

// Break implements Breaker when l does (see lease.Break).
func (o *observedLocker) Break(ctx context.Context, key string) (bool, error) {
	return Break(ctx, o.l, key)
}

// observedLease reports its Renew and Release calls, and its end once.
type observedLease struct {
	Lease
	obs      Observer
	acquired time.Time
	ended    sync.Once
}

func (l *observedLease) Renew(ctx context.Context) error {
	rctx := l.obs.RenewStart(ctx, RenewStartEvent{Key: l.Key(), Token: l.Token()})
	began := time.Now()
	err := l.Lease.Renew(rctx)
	l.obs.RenewEnd(rctx, RenewEvent{Key: l.Key(), Token: l.Token(), Duration: time.Since(began), Err: err})
	if errors.Is(err, ErrLost) {
		// The caller's context: the renewal's span has ended by now.
		l.end(ctx, EndLost, err)
	}
	return err
}

func (l *observedLease) Release(ctx context.Context) error {
	err := l.Lease.Release(ctx)
	switch {
	case err == nil:
		l.end(ctx, EndReleased, nil)
	case errors.Is(err, ErrLost):
		l.end(ctx, EndLost, err)
	default:
		l.end(ctx, EndReleaseFailed, err)
	}
	return err
}

func (l *observedLease) end(ctx context.Context, r EndReason, err error) {
	l.ended.Do(func() {
		l.obs.LeaseEnded(ctx, EndEvent{Key: l.Key(), Token: l.Token(), Reason: r, Held: time.Since(l.acquired), Err: err})
	})
}
