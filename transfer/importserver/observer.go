package importserver

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/observe"
	"github.com/ferryhq/ferry/transfer"
)

// Observer is told what the server does, for metrics and tracing; the
// package depends on no metrics library (prommetrics implements it).
// Calls are synchronous, from many goroutines at once: they must be quick,
// safe for concurrent use, and must not block. Without Config.Observer an
// empty one is called.
//
// Hooks follow pgx's tracer shape, like every Ferry package's: an
// operation that takes time (an API request, an import, a notification's
// delivery) gets XStart, whose returned context the operation runs under
// (a span started in ImportStart is the parent of the Importer's own,
// transfer's hooks included), and XEnd, called once with that context;
// events without a duration are single calls.
type Observer interface {
	// RequestStart is called when the import API receives a request; the
	// request is served under the context it returns.
	RequestStart(ctx context.Context, e RequestStartEvent) context.Context
	// RequestEnd is called after the import API answered, with the
	// context RequestStart returned.
	RequestEnd(ctx context.Context, e RequestEvent)
	// ImportStart is called when a run begins (after the store recorded
	// it); the Importer runs under the context it returns.
	ImportStart(ctx context.Context, e ImportStartEvent) context.Context
	// ImportEnd is called when the run ended and its outcome was recorded
	// (or could not be), with the context ImportStart returned (no longer
	// cancelled with the run).
	ImportEnd(ctx context.Context, e ImportEvent)
	// StaleFailed is called for each import found stale and ended.
	StaleFailed(ctx context.Context, e ImportEvent)
	// WriteGuarded is called for each write WriteGuard did not simply
	// let through.
	WriteGuarded(ctx context.Context, e GuardEvent)
	// DeliveryStart is called before each attempt to deliver a
	// notification; the request to the registry is made under the
	// context it returns.
	DeliveryStart(ctx context.Context, e DeliveryStartEvent) context.Context
	// DeliveryEnd is called after each attempt, once its answer is known,
	// with the context DeliveryStart returned.
	DeliveryEnd(ctx context.Context, e DeliveryEvent)
	// OutboxChecked is called every NotifyConfig.StatsInterval with the
	// outbox's pending and failed counts and the oldest pending age.
	OutboxChecked(ctx context.Context, e OutboxStats)
}

// RequestStartEvent describes a request the import API received.
type RequestStartEvent struct {
	Method string
	// URLPath is the request's path as received (unbounded and not yet
	// validated: fine on a trace span, never a metric label).
	URLPath string
}

// ImportStartEvent describes a run about to begin.
type ImportStartEvent struct {
	Import Import
}

// DeliveryStartEvent describes an attempt to deliver a notification about
// to be made.
type DeliveryStartEvent struct {
	Notification Notification
}

// Operation is what an import API request asked. There are no others, so
// they are safe as metric label values.
type Operation string

// The operations.
const (
	OpStart   Operation = "start"
	OpStatus  Operation = "status"
	OpCancel  Operation = "cancel"
	OpInvalid Operation = "invalid" // wrong method or endpoint
)

// RequestEvent describes one answered import API request.
type RequestEvent struct {
	Op Operation
	// Type is the start's import type (empty for other operations or an
	// invalid one).
	Type Type
	// Path is the repository, empty when invalid. Never a metric label.
	Path string
	// Code is the HTTP status answered.
	Code     int
	Duration time.Duration
	// Err is why the request was refused or failed, nil on success.
	Err error
}

// ImportEvent describes one run that ended.
type ImportEvent struct {
	Import Import
	// Result is how it ended.
	Result Result
	// Duration is how long it ran (ImportEnd).
	Duration time.Duration
	// Report is the importer's, when it returned one.
	Report *transfer.Report
	// Err is the importer's error, or the store's when the outcome could
	// not be recorded (Recorded false).
	Err error
	// Recorded says whether ImportEnd's outcome reached the store.
	// A run ended by someone else (forced cancellation, stale sweep) is
	// not recorded by its owner.
	Recorded bool
	// Abandoned marks a repository's first pre-import, started while the
	// repository's existence was being checked, that was dropped because
	// it was not found or could not be checked: its record was deleted
	// (Store.Abandon), its start answered 404 or 503, nothing notified.
	// Result is empty.
	Abandoned bool
}

// GuardAction is what WriteGuard did with a write.
type GuardAction string

// The guard actions. There are no others, so they are safe as metric
// label values.
const (
	// GuardRefused: a final import runs; the write was refused.
	GuardRefused GuardAction = "refused"
	// GuardCanceledPreImport: a pre-import ran; it was asked to stop and
	// the write went through.
	GuardCanceledPreImport GuardAction = "canceled_pre_import"
	// GuardAllowedDuringPreImport: a pre-import runs and the write went
	// through (GuardConfig.AllowPreImportWrites).
	GuardAllowedDuringPreImport GuardAction = "allowed_during_pre_import"
	// GuardUnavailable: the import state could not be read; the write
	// was refused.
	GuardUnavailable GuardAction = "unavailable"
)

// GuardEvent describes one write that WriteGuard acted on.
type GuardEvent struct {
	Path   string
	Method string
	Action GuardAction
	// Status is the import's status at the time (empty when unavailable).
	Status Status
	Err    error
}

// DeliveryEvent describes one attempt to deliver a notification.
type DeliveryEvent struct {
	Notification Notification
	// Result is what the attempt led to; Code the HTTP answer (0: none).
	Result   DeliveryResult
	Code     int
	Duration time.Duration
	Err      error
	// Abandoned is true when the server stopped during the attempt:
	// nothing was recorded, and the notification is sent again once its
	// claim expires.
	Abandoned bool
}

// ObserverFuncs is an Observer built from optional functions; nil ones do
// nothing (a nil XStart returns its context). The zero value is a no-op
// Observer.
type ObserverFuncs struct {
	OnRequestStart  func(context.Context, RequestStartEvent) context.Context
	OnRequestEnd    func(context.Context, RequestEvent)
	OnImportStart   func(context.Context, ImportStartEvent) context.Context
	OnImportEnd     func(context.Context, ImportEvent)
	OnStaleFailed   func(context.Context, ImportEvent)
	OnWriteGuarded  func(context.Context, GuardEvent)
	OnDeliveryStart func(context.Context, DeliveryStartEvent) context.Context
	OnDeliveryEnd   func(context.Context, DeliveryEvent)
	OnOutboxChecked func(context.Context, OutboxStats)
}

var _ Observer = ObserverFuncs{}

// RequestStart implements Observer.
func (o ObserverFuncs) RequestStart(ctx context.Context, e RequestStartEvent) context.Context {
	return observe.CallStart(o.OnRequestStart, ctx, e)
}

// RequestEnd implements Observer.
func (o ObserverFuncs) RequestEnd(ctx context.Context, e RequestEvent) {
	observe.Call(o.OnRequestEnd, ctx, e)
}

// ImportStart implements Observer.
func (o ObserverFuncs) ImportStart(ctx context.Context, e ImportStartEvent) context.Context {
	return observe.CallStart(o.OnImportStart, ctx, e)
}

// ImportEnd implements Observer.
func (o ObserverFuncs) ImportEnd(ctx context.Context, e ImportEvent) {
	observe.Call(o.OnImportEnd, ctx, e)
}

// StaleFailed implements Observer.
func (o ObserverFuncs) StaleFailed(ctx context.Context, e ImportEvent) {
	observe.Call(o.OnStaleFailed, ctx, e)
}

// WriteGuarded implements Observer.
func (o ObserverFuncs) WriteGuarded(ctx context.Context, e GuardEvent) {
	observe.Call(o.OnWriteGuarded, ctx, e)
}

// DeliveryStart implements Observer.
func (o ObserverFuncs) DeliveryStart(ctx context.Context, e DeliveryStartEvent) context.Context {
	return observe.CallStart(o.OnDeliveryStart, ctx, e)
}

// DeliveryEnd implements Observer.
func (o ObserverFuncs) DeliveryEnd(ctx context.Context, e DeliveryEvent) {
	observe.Call(o.OnDeliveryEnd, ctx, e)
}

// OutboxChecked implements Observer.
func (o ObserverFuncs) OutboxChecked(ctx context.Context, e OutboxStats) {
	observe.Call(o.OnOutboxChecked, ctx, e)
}

// MultiObserver tells every observer, in order; nil observers are
// dropped. Start hooks run in order, each under the context the previous
// one returned; End hooks run in reverse order, each with the context its
// own Start returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) RequestStart(ctx context.Context, e RequestStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.RequestStart(ctx, e) })
}

func (m multiObserver) RequestEnd(ctx context.Context, e RequestEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.RequestEnd(ctx, e) })
}

func (m multiObserver) ImportStart(ctx context.Context, e ImportStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.ImportStart(ctx, e) })
}

func (m multiObserver) ImportEnd(ctx context.Context, e ImportEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.ImportEnd(ctx, e) })
}

func (m multiObserver) StaleFailed(ctx context.Context, e ImportEvent) {
	for _, o := range m {
		o.StaleFailed(ctx, e)
	}
}

func (m multiObserver) WriteGuarded(ctx context.Context, e GuardEvent) {
	for _, o := range m {
		o.WriteGuarded(ctx, e)
	}
}

func (m multiObserver) DeliveryStart(ctx context.Context, e DeliveryStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.DeliveryStart(ctx, e) })
}

func (m multiObserver) DeliveryEnd(ctx context.Context, e DeliveryEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.DeliveryEnd(ctx, e) })
}

func (m multiObserver) OutboxChecked(ctx context.Context, e OutboxStats) {
	for _, o := range m {
		o.OutboxChecked(ctx, e)
	}
}
