package prommetrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/enqueuer"
)

// Enqueuer returns the enqueuer.Observer that moves the ferry_enqueuer_*
// metrics, for enqueuer.Config.Observer and enqueuer.HandlerOptions.Observer.
func (m *Metrics) Enqueuer() enqueuer.Observer {
	if m == nil {
		return enqueuer.ObserverFuncs{}
	}
	return m.enqueuer
}

type enqueuerObserver struct {
	runs          *prometheus.CounterVec
	runDuration   prometheus.Histogram
	starts        *prometheus.CounterVec
	startDuration *prometheus.HistogramVec
	skips         *prometheus.CounterVec
	aborts        *prometheus.CounterVec
	inProgress    prometheus.Gauge
	capacity      prometheus.Gauge
	notifications *prometheus.CounterVec
	notifyTime    prometheus.Histogram
	reconciled    *prometheus.CounterVec
}

var _ enqueuer.Observer = (*enqueuerObserver)(nil)

func newEnqueuerObserver() *enqueuerObserver {
	const sub = "enqueuer"
	return &enqueuerObserver{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "runs_total", Help: "Enqueuer runs, by why they stopped (capacity_full, nothing_left, deadline, disabled, once, too_many_imports, registry_unavailable, too_many_aborts, lease_held, error)."},
			[]string{"stopped"}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "run_duration_seconds", Help: "Duration of enqueuer runs.", Buckets: enqueuerRunBuckets}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "starts_total", Help: "Imports asked of the registry, by import type (next, retry, final) and result (accepted, too_many_imports = HTTP 429, registry_unavailable, cancelled, native, not_found, refused)."},
			[]string{"import_type", "result"}),
		startDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "start_duration_seconds", Help: "Duration of the registry call that starts an import, by import type.",
			Buckets: registryCallBuckets}, []string{"import_type"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "skips_total", Help: "Repositories skipped, by reason (too_many_tags, too_many_retries, native_import, not_found, migration_canceled, migration_forced_canceled)."},
			[]string{"reason"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "aborts_total", Help: "Repositories aborted, by cause (refused: the registry refused the start; stale: the import was not running as recorded; canceled: it ran past its timeout and was cancelled)."},
			[]string{"cause"}),
		inProgress: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "imports_in_progress", Help: "Repositories pre-importing or importing, as last counted by a run (on the primary)."}),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "import_capacity", Help: "Imports allowed in progress at once, as last asked by a run (Config.Capacity)."}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notifications_total", Help: "Import notifications received, by status (pre_import_complete, pre_import_failed, import_complete, import_failed, invalid) and outcome (applied, duplicate, wrong_state, not_found, bad_request, unauthorized, error)."},
			[]string{"status", "outcome"}),
		notifyTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notification_duration_seconds", Help: "Time to answer an import notification.", Buckets: notificationBuckets}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "reconciled_total", Help: "Aborted repositories reconciled with the registry's status before their retry, by the status (native, pre_import_in_progress, ..., unknown) and the outcome (retried, resumed, finished, skipped)."},
			[]string{"status", "outcome"}),
	}
}

func (o *enqueuerObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.runs, o.runDuration, o.starts, o.startDuration, o.skips, o.aborts,
		o.inProgress, o.capacity, o.notifications, o.notifyTime, o.reconciled}
}

var importTypes = []enqueuer.ImportType{enqueuer.ImportNext, enqueuer.ImportRetry, enqueuer.ImportFinal}

// RunStart implements enqueuer.Observer: the metrics need only RunEnd's
// event.
func (o *enqueuerObserver) RunStart(ctx context.Context, _ enqueuer.RunStartEvent) context.Context {
	return ctx
}

// RunEnd implements enqueuer.Observer.
func (o *enqueuerObserver) RunEnd(_ context.Context, e enqueuer.RunEvent) {
	stopped := oneOf(e.Report.Stopped, string(enqueuer.StopError),
		enqueuer.StopCapacityFull, enqueuer.StopNothingLeft, enqueuer.StopDeadline, enqueuer.StopDisabled,
		enqueuer.StopOnce, enqueuer.StopTooManyImports, enqueuer.StopTooEarly, enqueuer.StopRegistryUnavailable,
		enqueuer.StopTooManyAborts, enqueuer.StopLeaseHeld)
	o.runs.WithLabelValues(stopped).Inc()
	o.runDuration.Observe(e.Report.Duration.Seconds())
}

// StartImportStart implements enqueuer.Observer: the call's duration
// comes with StartImportEnd's event.
func (o *enqueuerObserver) StartImportStart(ctx context.Context, _ enqueuer.StartImportStartEvent) context.Context {
	return ctx
}

// StartImportEnd implements enqueuer.Observer.
func (o *enqueuerObserver) StartImportEnd(_ context.Context, e enqueuer.StartEvent) {
	typ := oneOf(e.ImportType, OtherLabel, importTypes...)
	result := oneOf(e.Result, OtherLabel, enqueuer.StartAccepted, enqueuer.StartTooManyImports, enqueuer.StartTooEarly,
		enqueuer.StartUnavailable, enqueuer.StartCancelled, enqueuer.StartNative, enqueuer.StartNotFound, enqueuer.StartRefused)
	o.starts.WithLabelValues(typ, result).Inc()
	o.startDuration.WithLabelValues(typ).Observe(e.Duration.Seconds())
}

// Skipped implements enqueuer.Observer.
func (o *enqueuerObserver) Skipped(_ context.Context, e enqueuer.SkipEvent) {
	o.skips.WithLabelValues(oneOf(e.Reason, OtherLabel, enqueuer.SkipReasons...)).Inc()
}

// Aborted implements enqueuer.Observer.
func (o *enqueuerObserver) Aborted(_ context.Context, e enqueuer.AbortEvent) {
	cause := "refused"
	switch {
	case e.Canceled:
		cause = "canceled"
	case e.Stale:
		cause = "stale"
	}
	o.aborts.WithLabelValues(cause).Inc()
}

// CapacityChecked implements enqueuer.Observer.
func (o *enqueuerObserver) CapacityChecked(_ context.Context, e enqueuer.CapacityEvent) {
	o.inProgress.Set(float64(e.InProgress))
	o.capacity.Set(float64(e.Capacity))
}

// registryStatuses are the statuses the reconciled metric names; others
// (and an unreadable status) count as "unknown".
var registryStatuses = []enqueuer.RegistryStatus{enqueuer.StatusNative, enqueuer.StatusPreImportInProgress,
	enqueuer.StatusPreImportComplete, enqueuer.StatusPreImportFailed, enqueuer.StatusPreImportCanceled,
	enqueuer.StatusImportInProgress, enqueuer.StatusImportComplete, enqueuer.StatusImportFailed, enqueuer.StatusImportCanceled}

// Reconciled implements enqueuer.Observer.
func (o *enqueuerObserver) Reconciled(_ context.Context, e enqueuer.ReconcileEvent) {
	status := oneOf(e.Status, "unknown", registryStatuses...)
	outcome := oneOf(e.Outcome, OtherLabel, enqueuer.ReconcileRetried, enqueuer.ReconcileResumed,
		enqueuer.ReconcileFinished, enqueuer.ReconcileSkipped)
	o.reconciled.WithLabelValues(status, outcome).Inc()
}

// NotifyStart implements enqueuer.Observer: the request's duration comes
// with NotifyEnd's event.
func (o *enqueuerObserver) NotifyStart(ctx context.Context, _ enqueuer.NotifyStartEvent) context.Context {
	return ctx
}

// NotifyEnd implements enqueuer.Observer.
func (o *enqueuerObserver) NotifyEnd(_ context.Context, e enqueuer.NotifyEvent) {
	status := oneOf(e.Status, "invalid", enqueuer.NotifyPreImportComplete, enqueuer.NotifyPreImportFailed,
		enqueuer.NotifyImportComplete, enqueuer.NotifyImportFailed, enqueuer.NotifyPreImportCanceled, enqueuer.NotifyImportCanceled)
	outcome := oneOf(e.Outcome, OtherLabel, enqueuer.NotificationApplied, enqueuer.NotificationDuplicate,
		enqueuer.NotificationWrongState, enqueuer.NotificationNotFound, enqueuer.NotificationBadRequest,
		enqueuer.NotificationUnauthorized, enqueuer.NotificationError)
	o.notifications.WithLabelValues(status, outcome).Inc()
	o.notifyTime.Observe(e.Duration.Seconds())
}
