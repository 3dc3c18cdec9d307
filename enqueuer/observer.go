package enqueuer

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/observe"
)

// Observer is told what runs and the notification Handler do, for metrics
// and tracing; enqueuer itself depends on no metrics library (package
// prommetrics implements it with Prometheus). Calls are made synchronously
// (from the goroutines of a ParallelLoop, concurrently), so they must be
// quick, safe for concurrent use and must not block. Without an Observer
// (Config.Observer, HandlerOptions.Observer) an empty one is called.
//
// Hooks follow pgx's tracer shape, like every Ferry package's: an
// operation that takes time (a Run, a start asked of the registry, a
// notification) gets XStart, whose returned context the operation runs
// under (a span started in RunStart is the parent of the lease's and the
// registry calls' spans), and XEnd, called once with that context; events
// without a duration are single calls.
type Observer interface {
	// RunStart is called when a Run begins; the Run runs under the
	// context it returns.
	RunStart(ctx context.Context, e RunStartEvent) context.Context
	// RunEnd is called at the end of every Run, also one that found the
	// lease held or the feature flag off, with the context RunStart
	// returned.
	RunEnd(ctx context.Context, e RunEvent)
	// StartImportStart is called before the registry is asked to start
	// an import (RegistryClient.StartImport or StartPreImport); the call
	// runs under the context it returns.
	StartImportStart(ctx context.Context, e StartImportStartEvent) context.Context
	// StartImportEnd is called when the registry answered the start (or
	// could not be asked), whatever the answer, with the context
	// StartImportStart returned.
	StartImportEnd(ctx context.Context, e StartEvent)
	// Skipped is called when a repository was moved to StateImportSkipped.
	Skipped(ctx context.Context, e SkipEvent)
	// Aborted is called when a repository was moved to StateImportAborted,
	// after a refused start or by the stale guard.
	Aborted(ctx context.Context, e AbortEvent)
	// CapacityChecked is called each time a run counts the imports in
	// progress against the capacity (Runner.Free).
	CapacityChecked(ctx context.Context, e CapacityEvent)
	// Reconciled is called when an aborted repository's import status was
	// read from the registry before its retry, with what was done.
	Reconciled(ctx context.Context, e ReconcileEvent)
	// NotifyStart is called when the Handler receives a request; the
	// request is served under the context it returns.
	NotifyStart(ctx context.Context, e NotifyStartEvent) context.Context
	// NotifyEnd is called after the Handler answered, with the context
	// NotifyStart returned.
	NotifyEnd(ctx context.Context, e NotifyEvent)
}

// RunStartEvent describes a Run about to begin. It carries nothing yet; it
// is there so that fields can be added without breaking Observers.
type RunStartEvent struct{}

// StartImportStartEvent describes a start about to be asked of the
// registry.
type StartImportStartEvent struct {
	// Repository is the repository as claimed for the start. Its Path is
	// unbounded: fine on a trace span, never a metric label.
	Repository Repository
	ImportType ImportType
}

// NotifyStartEvent describes a request the Handler received.
type NotifyStartEvent struct {
	Method string
	// URLPath is the request's path as received (unbounded and not yet
	// validated: fine on a trace span, never a metric label).
	URLPath string
}

// RunEvent describes a finished Run.
type RunEvent struct {
	// Report is what the run did; Report.Stopped says why it ended and
	// Report.Duration how long it took.
	Report Report
	// Err is Run's error.
	Err error
}

// StartResult classifies the registry's answer to a start. There are no
// others, so they are safe as metric label values.
type StartResult string

// The answers to a start.
const (
	// StartAccepted: the registry started the import.
	StartAccepted StartResult = "accepted"
	// StartTooManyImports: the registry is full (HTTP 429); the claim was
	// reverted and the run ends.
	StartTooManyImports StartResult = "too_many_imports"
	// StartTooEarly: the registry is not ready for the start yet (HTTP
	// 425: a pre-import still running there, or an earlier outcome not
	// delivered yet); the claim was reverted and the run ends.
	StartTooEarly StartResult = "too_early"
	// StartUnavailable: the registry could not be reached; the claim was
	// reverted and the run ends.
	StartUnavailable StartResult = "registry_unavailable"
	// StartCancelled: the run's context ended; the claim was reverted.
	StartCancelled StartResult = "cancelled"
	// StartNative: the repository is already native; it is skipped.
	StartNative StartResult = "native"
	// StartNotFound: the registry does not know the repository (HTTP
	// 404); it is skipped.
	StartNotFound StartResult = "not_found"
	// StartRefused: the registry refused because of the repository; it is
	// aborted.
	StartRefused StartResult = "refused"
)

// StartEvent describes one start asked of the registry.
type StartEvent struct {
	// Repository is the repository as claimed for the start. Its Path is
	// unbounded: fine on a trace span, never a metric label.
	Repository Repository
	ImportType ImportType
	Result     StartResult
	// Duration is how long the registry call took.
	Duration time.Duration
	// Err is the registry's error; nil when Result is StartAccepted.
	Err error
}

// SkipEvent describes a skipped repository.
type SkipEvent struct {
	Repository Repository
	ImportType ImportType
	// Reason is one of SkipReasons.
	Reason string
}

// AbortEvent describes an aborted repository.
type AbortEvent struct {
	Repository Repository
	// ImportType is the start's type; empty when Stale.
	ImportType ImportType
	// Reason is the registry's error or the stale guard's explanation
	// (free text).
	Reason string
	// Stale is true when the stale guard aborted an import (not running
	// as recorded, or cancelled), false when the registry refused a start.
	Stale bool
	// Canceled is true when the stale guard cancelled the import at the
	// registry because it ran past its timeout.
	Canceled bool
}

// ReconcileEvent describes the reconciliation of an aborted repository
// with the registry before its retry.
type ReconcileEvent struct {
	// Repository is the repository as it was (aborted).
	Repository Repository
	// Status is what the registry reported; StatusUnknown when it could
	// not say (Err).
	Status RegistryStatus
	// Outcome is what was done.
	Outcome ReconcileOutcome
	// Err is the status request's error, if any.
	Err error
}

// CapacityEvent is the capacity a run saw.
type CapacityEvent struct {
	// InProgress counts repositories in InProgressStates, read on the
	// primary.
	InProgress int
	// Capacity is what Config.Capacity returned.
	Capacity int
}

// NotificationOutcome classifies the Handler's answer. There are no
// others, so they are safe as metric label values.
type NotificationOutcome string

// The Handler's answers.
const (
	// NotificationApplied: the state changed (200).
	NotificationApplied NotificationOutcome = "applied"
	// NotificationDuplicate: it had already been applied (200).
	NotificationDuplicate NotificationOutcome = "duplicate"
	// NotificationWrongState: the repository is in a state the
	// notification does not fit (400 "wrong migration state").
	NotificationWrongState NotificationOutcome = "wrong_state"
	// NotificationNotFound: an unknown repository or endpoint (404).
	NotificationNotFound NotificationOutcome = "not_found"
	// NotificationBadRequest: a malformed request: method, path, body or
	// status (400, 405, 413).
	NotificationBadRequest NotificationOutcome = "bad_request"
	// NotificationUnauthorized: missing or wrong credentials (401, 403).
	NotificationUnauthorized NotificationOutcome = "unauthorized"
	// NotificationError: the store failed (500).
	NotificationError NotificationOutcome = "error"
)

// NotifyEvent describes one request to the Handler.
type NotifyEvent struct {
	// Status is the notification's status as sent: one of the Notify*
	// constants unless Outcome is NotificationBadRequest, when it may be
	// anything (or empty).
	Status string
	// Path is the repository path from the URL; empty when it was
	// invalid. Never a metric label.
	Path    string
	Outcome NotificationOutcome
	// Code is the HTTP status code answered.
	Code int
	// Duration is how long the request took to answer.
	Duration time.Duration
	// Err is the store's error for NotificationError.
	Err error
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped (a nil XStart returns its context). The zero value observes
// nothing.
type ObserverFuncs struct {
	OnRunStart         func(ctx context.Context, e RunStartEvent) context.Context
	OnRunEnd           func(ctx context.Context, e RunEvent)
	OnStartImportStart func(ctx context.Context, e StartImportStartEvent) context.Context
	OnStartImportEnd   func(ctx context.Context, e StartEvent)
	OnSkipped          func(ctx context.Context, e SkipEvent)
	OnAborted          func(ctx context.Context, e AbortEvent)
	OnCapacityChecked  func(ctx context.Context, e CapacityEvent)
	OnReconciled       func(ctx context.Context, e ReconcileEvent)
	OnNotifyStart      func(ctx context.Context, e NotifyStartEvent) context.Context
	OnNotifyEnd        func(ctx context.Context, e NotifyEvent)
}

var _ Observer = ObserverFuncs{}

// RunStart implements Observer.
func (o ObserverFuncs) RunStart(ctx context.Context, e RunStartEvent) context.Context {
	return observe.CallStart(o.OnRunStart, ctx, e)
}

// RunEnd implements Observer.
func (o ObserverFuncs) RunEnd(ctx context.Context, e RunEvent) {
	observe.Call(o.OnRunEnd, ctx, e)
}

// StartImportStart implements Observer.
func (o ObserverFuncs) StartImportStart(ctx context.Context, e StartImportStartEvent) context.Context {
	return observe.CallStart(o.OnStartImportStart, ctx, e)
}

// StartImportEnd implements Observer.
func (o ObserverFuncs) StartImportEnd(ctx context.Context, e StartEvent) {
	observe.Call(o.OnStartImportEnd, ctx, e)
}

// Skipped implements Observer.
func (o ObserverFuncs) Skipped(ctx context.Context, e SkipEvent) {
	observe.Call(o.OnSkipped, ctx, e)
}

// Aborted implements Observer.
func (o ObserverFuncs) Aborted(ctx context.Context, e AbortEvent) {
	observe.Call(o.OnAborted, ctx, e)
}

// CapacityChecked implements Observer.
func (o ObserverFuncs) CapacityChecked(ctx context.Context, e CapacityEvent) {
	observe.Call(o.OnCapacityChecked, ctx, e)
}

// Reconciled implements Observer.
func (o ObserverFuncs) Reconciled(ctx context.Context, e ReconcileEvent) {
	observe.Call(o.OnReconciled, ctx, e)
}

// NotifyStart implements Observer.
func (o ObserverFuncs) NotifyStart(ctx context.Context, e NotifyStartEvent) context.Context {
	return observe.CallStart(o.OnNotifyStart, ctx, e)
}

// NotifyEnd implements Observer.
func (o ObserverFuncs) NotifyEnd(ctx context.Context, e NotifyEvent) {
	observe.Call(o.OnNotifyEnd, ctx, e)
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. Start hooks run in order, each under the context the
// previous one returned; End hooks run in reverse order, each with the
// context its own Start returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) RunStart(ctx context.Context, e RunStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.RunStart(ctx, e) })
}

func (m multiObserver) RunEnd(ctx context.Context, e RunEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.RunEnd(ctx, e) })
}

func (m multiObserver) StartImportStart(ctx context.Context, e StartImportStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.StartImportStart(ctx, e) })
}

func (m multiObserver) StartImportEnd(ctx context.Context, e StartEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.StartImportEnd(ctx, e) })
}

func (m multiObserver) Skipped(ctx context.Context, e SkipEvent) {
	for _, o := range m {
		o.Skipped(ctx, e)
	}
}

func (m multiObserver) Aborted(ctx context.Context, e AbortEvent) {
	for _, o := range m {
		o.Aborted(ctx, e)
	}
}

func (m multiObserver) CapacityChecked(ctx context.Context, e CapacityEvent) {
	for _, o := range m {
		o.CapacityChecked(ctx, e)
	}
}

func (m multiObserver) Reconciled(ctx context.Context, e ReconcileEvent) {
	for _, o := range m {
		o.Reconciled(ctx, e)
	}
}

func (m multiObserver) NotifyStart(ctx context.Context, e NotifyStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.NotifyStart(ctx, e) })
}

func (m multiObserver) NotifyEnd(ctx context.Context, e NotifyEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.NotifyEnd(ctx, e) })
}
