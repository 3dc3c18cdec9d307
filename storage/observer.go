package storage

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/observe"
)

// Observer is told how a DB routes reads and how its replicas are doing,
// for metrics and tracing; storage itself depends on no metrics library
// (package prommetrics implements it with Prometheus). Calls are made
// synchronously on the caller's goroutine, so they must be quick and must
// not block. A DB without an Observer (Config.Observer) calls an empty one.
//
// Hooks follow pgx's tracer shape: an operation that takes time (a replica
// check) gets XStart, whose returned context the operation runs under (a
// span started there is the parent of the queries' own spans), and XEnd,
// called once with that context when it is over; events without a
// duration are single calls.
type Observer interface {
	// ReadRouted is called by Choose (and so Read) with where the read
	// went and why.
	ReadRouted(ctx context.Context, e RouteEvent)
	// ReplicaCheckStart is called before each reading of a replica's
	// replay position; the check's queries run under the context it
	// returns.
	ReplicaCheckStart(ctx context.Context, e ReplicaCheckStartEvent) context.Context
	// ReplicaCheckEnd is called after each check, successful or not, with
	// the context ReplicaCheckStart returned.
	ReplicaCheckEnd(ctx context.Context, e ReplicaEvent)
	// ReplicaFellBack is called when a read on a replica failed on a
	// connection level and was run on the primary instead.
	ReplicaFellBack(ctx context.Context, e FallbackEvent)
}

// RouteReason says why a read went where it went.
type RouteReason string

// The reasons of a routed read. There are no others, so they are safe as
// metric label values.
const (
	// RouteCaughtUp: a healthy replica had replayed the key's last write.
	RouteCaughtUp RouteReason = "caught_up"
	// RouteUsePrimary: the context came from UsePrimary.
	RouteUsePrimary RouteReason = "use_primary"
	// RouteNoReplicas: the DB has no replicas.
	RouteNoReplicas RouteReason = "no_replicas"
	// RouteReplicasBehind: a replica was up, but none had replayed the
	// key's last write or each lagged more than MaxReplicaLagBytes.
	RouteReplicasBehind RouteReason = "replicas_behind"
	// RouteReplicasDown: every replica was failing or could not be asked.
	RouteReplicasDown RouteReason = "replicas_down"
)

// RouteEvent describes one routed read.
type RouteEvent struct {
	Target Target
	Reason RouteReason
	// Replica names the replica (host:port/database) for TargetReplica.
	Replica string
	// Key is the read's sticky key. It may be a repository path or any
	// other unbounded value: fine on a trace span, never a metric label.
	Key string
}

// ReplicaCheckStartEvent describes a check of a replica about to run.
type ReplicaCheckStartEvent struct {
	// Replica names the replica: host:port/database, no password.
	Replica string
}

// ReplicaEvent describes one reading of a replica's position.
type ReplicaEvent struct {
	// Replica names the replica: host:port/database, no password.
	Replica string
	// LagBytes is how much WAL the primary has written that the replica
	// has not replayed yet (when Err is nil).
	LagBytes int64
	// Duration is how long the check took (both round trips).
	Duration time.Duration
	// Err is why the check failed; the replica then takes no reads for
	// ReplicaRetryAfter, unless Abandoned.
	Err error
	// Abandoned is true when the caller's context ended during the check:
	// Err then says nothing about the replica, which stays as it was.
	Abandoned bool
}

// FallbackEvent describes a replica read that was run on the primary.
type FallbackEvent struct {
	Replica string
	Err     error
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped. The zero value observes nothing.
type ObserverFuncs struct {
	OnReadRouted        func(ctx context.Context, e RouteEvent)
	OnReplicaCheckStart func(ctx context.Context, e ReplicaCheckStartEvent) context.Context
	OnReplicaCheckEnd   func(ctx context.Context, e ReplicaEvent)
	OnReplicaFellBack   func(ctx context.Context, e FallbackEvent)
}

var _ Observer = ObserverFuncs{}

// ReadRouted implements Observer.
func (o ObserverFuncs) ReadRouted(ctx context.Context, e RouteEvent) {
	observe.Call(o.OnReadRouted, ctx, e)
}

// ReplicaCheckStart implements Observer.
func (o ObserverFuncs) ReplicaCheckStart(ctx context.Context, e ReplicaCheckStartEvent) context.Context {
	return observe.CallStart(o.OnReplicaCheckStart, ctx, e)
}

// ReplicaCheckEnd implements Observer.
func (o ObserverFuncs) ReplicaCheckEnd(ctx context.Context, e ReplicaEvent) {
	observe.Call(o.OnReplicaCheckEnd, ctx, e)
}

// ReplicaFellBack implements Observer.
func (o ObserverFuncs) ReplicaFellBack(ctx context.Context, e FallbackEvent) {
	observe.Call(o.OnReplicaFellBack, ctx, e)
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. Start hooks run in order, each under the context the
// previous one returned; End hooks run in reverse order, each with the
// context its own Start returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) ReadRouted(ctx context.Context, e RouteEvent) {
	for _, o := range m {
		o.ReadRouted(ctx, e)
	}
}

func (m multiObserver) ReplicaCheckStart(ctx context.Context, e ReplicaCheckStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.ReplicaCheckStart(ctx, e) })
}

func (m multiObserver) ReplicaCheckEnd(ctx context.Context, e ReplicaEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.ReplicaCheckEnd(ctx, e) })
}

func (m multiObserver) ReplicaFellBack(ctx context.Context, e FallbackEvent) {
	for _, o := range m {
		o.ReplicaFellBack(ctx, e)
	}
}
