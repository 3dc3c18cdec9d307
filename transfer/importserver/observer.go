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
type Observer interface {
	// Requested is called after the import API answered a request.
	Requested(ctx context.Context, e RequestEvent)
	// ImportStarted is called when a run begins (after the store recorded
	// it), ImportFinished when it ended and its outcome was recorded (or
	// could not be).
	ImportStarted(ctx context.Context, e ImportEvent)
	ImportFinished(ctx context.Context, e ImportEvent)
	// StaleFailed is called for each import found stale and ended.
	StaleFailed(ctx context.Context, e ImportEvent)
	// WriteGuarded is called for each write WriteGuard did not simply
	// let through.
	WriteGuarded(ctx context.Context, e GuardEvent)
	// NotificationAttempted is called after each delivery attempt.
	NotificationAttempted(ctx context.Context, e DeliveryEvent)
	// OutboxChecked is called every NotifyConfig.StatsInterval with the
	// outbox's pending and failed counts and the oldest pending age.
	OutboxChecked(ctx context.Context, e OutboxStats)
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

// ImportEvent describes one run.
type ImportEvent struct {
	Import Import
	// Result is how it ended (ImportFinished, StaleFailed).
	Result Result
	// Duration is how long it ran (ImportFinished).
	Duration time.Duration
	// Report is the importer's, when it returned one.
	Report *transfer.Report
	// Err is the importer's error, or the store's when the outcome could
	// not be recorded (Recorded false).
	Err error
	// Recorded says whether ImportFinished's outcome reached the store.
	// A run ended by someone else (forced cancellation, stale sweep) is
	// not recorded by its owner.
	Recorded bool
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
}

// ObserverFuncs is an Observer built from optional functions; nil ones do
// nothing. The zero value is a no-op Observer.
type ObserverFuncs struct {
	OnRequested             func(context.Context, RequestEvent)
	OnImportStarted         func(context.Context, ImportEvent)
	OnImportFinished        func(context.Context, ImportEvent)
	OnStaleFailed           func(context.Context, ImportEvent)
	OnWriteGuarded          func(context.Context, GuardEvent)
	OnNotificationAttempted func(context.Context, DeliveryEvent)
	OnOutboxChecked         func(context.Context, OutboxStats)
}

var _ Observer = ObserverFuncs{}

// Requested implements Observer.
func (o ObserverFuncs) Requested(ctx context.Context, e RequestEvent) {
	if o.OnRequested != nil {
		o.OnRequested(ctx, e)
	}
}

// ImportStarted implements Observer.
func (o ObserverFuncs) ImportStarted(ctx context.Context, e ImportEvent) {
	if o.OnImportStarted != nil {
		o.OnImportStarted(ctx, e)
	}
}

// ImportFinished implements Observer.
func (o ObserverFuncs) ImportFinished(ctx context.Context, e ImportEvent) {
	if o.OnImportFinished != nil {
		o.OnImportFinished(ctx, e)
	}
}

// StaleFailed implements Observer.
func (o ObserverFuncs) StaleFailed(ctx context.Context, e ImportEvent) {
	if o.OnStaleFailed != nil {
		o.OnStaleFailed(ctx, e)
	}
}

// WriteGuarded implements Observer.
func (o ObserverFuncs) WriteGuarded(ctx context.Context, e GuardEvent) {
	if o.OnWriteGuarded != nil {
		o.OnWriteGuarded(ctx, e)
	}
}

// NotificationAttempted implements Observer.
func (o ObserverFuncs) NotificationAttempted(ctx context.Context, e DeliveryEvent) {
	if o.OnNotificationAttempted != nil {
		o.OnNotificationAttempted(ctx, e)
	}
}

// OutboxChecked implements Observer.
func (o ObserverFuncs) OutboxChecked(ctx context.Context, e OutboxStats) {
	if o.OnOutboxChecked != nil {
		o.OnOutboxChecked(ctx, e)
	}
}

// MultiObserver tells every observer, in order. Nil observers are dropped.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) Requested(ctx context.Context, e RequestEvent) {
	for _, o := range m {
		o.Requested(ctx, e)
	}
}

func (m multiObserver) ImportStarted(ctx context.Context, e ImportEvent) {
	for _, o := range m {
		o.ImportStarted(ctx, e)
	}
}

func (m multiObserver) ImportFinished(ctx context.Context, e ImportEvent) {
	for _, o := range m {
		o.ImportFinished(ctx, e)
	}
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

func (m multiObserver) NotificationAttempted(ctx context.Context, e DeliveryEvent) {
	for _, o := range m {
		o.NotificationAttempted(ctx, e)
	}
}

func (m multiObserver) OutboxChecked(ctx context.Context, e OutboxStats) {
	for _, o := range m {
		o.OutboxChecked(ctx, e)
	}
}
