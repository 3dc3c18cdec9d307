package prommetrics

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/transfer/importserver"
)

// ImportServer returns the importserver.Observer that moves the
// ferry_importserver_* metrics, for importserver.Config.Observer.
func (m *Metrics) ImportServer() importserver.Observer {
	if m == nil {
		return importserver.ObserverFuncs{}
	}
	return m.importServer
}

type importServerObserver struct {
	requests     *prometheus.CounterVec
	requestTime  *prometheus.HistogramVec
	running      prometheus.Gauge
	imports      *prometheus.CounterVec
	importTime   *prometheus.HistogramVec
	stale        *prometheus.CounterVec
	writes       *prometheus.CounterVec
	attempts     *prometheus.CounterVec
	attemptTime  prometheus.Histogram
	pending      prometheus.Gauge
	failed       prometheus.Gauge
	oldestWaiter prometheus.Gauge
}

var _ importserver.Observer = (*importServerObserver)(nil)

// importAPICodes are the answers the import API gives; anything else is
// "other" (it gives none).
var importAPICodes = []string{"200", "202", "400", "401", "403", "404", "405", "409", "413", "424", "425", "429", "503"}

var importServerTypes = []importserver.Type{importserver.PreImport, importserver.FinalImport}

func newImportServerObserver() *importServerObserver {
	const sub = "importserver"
	return &importServerObserver{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "requests_total", Help: "Import API requests, by operation (start, status, cancel, invalid) and HTTP status code."},
			[]string{"op", "code"}),
		requestTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "request_duration_seconds", Help: "Time to answer an import API request, by operation.",
			Buckets: notificationBuckets}, []string{"op"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "imports_running", Help: "Imports this process runs now."}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "imports_total", Help: "Imports this process ran to an end, by type (pre, final) and result (complete, failed, canceled, unrecorded: ended elsewhere or not recorded)."},
			[]string{"type", "result"}),
		importTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "import_duration_seconds", Help: "Duration of imports, by type.", Buckets: repositoryBuckets}, []string{"type"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "stale_imports_total", Help: "Imports found stale (their process died or stopped sending heartbeats) and ended, by type."},
			[]string{"type"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "guarded_writes_total", Help: "Writes WriteGuard acted on, by action (refused, canceled_pre_import, allowed_during_pre_import, unavailable)."},
			[]string{"action"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notification_attempts_total", Help: "Notification delivery attempts, by result (delivered, retry, give_up)."},
			[]string{"result"}),
		attemptTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notification_attempt_duration_seconds", Help: "Duration of notification delivery attempts.", Buckets: registryCallBuckets}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notifications_pending", Help: "Notifications in the outbox not delivered yet (all instances), as last checked."}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notifications_failed", Help: "Notifications given up after repeated refusals, kept in the outbox, as last checked."}),
		oldestWaiter: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "notification_oldest_pending_seconds", Help: "Age of the oldest undelivered notification (0 when none), as last checked."}),
	}
}

func (o *importServerObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.requests, o.requestTime, o.running, o.imports, o.importTime, o.stale, o.writes,
		o.attempts, o.attemptTime, o.pending, o.failed, o.oldestWaiter}
}

// RequestStart implements importserver.Observer: the request's duration
// comes with RequestEnd's event.
func (o *importServerObserver) RequestStart(ctx context.Context, _ importserver.RequestStartEvent) context.Context {
	return ctx
}

// RequestEnd implements importserver.Observer.
func (o *importServerObserver) RequestEnd(_ context.Context, e importserver.RequestEvent) {
	op := oneOf(e.Op, OtherLabel, importserver.OpStart, importserver.OpStatus, importserver.OpCancel, importserver.OpInvalid)
	o.requests.WithLabelValues(op, oneOf(strconv.Itoa(e.Code), OtherLabel, importAPICodes...)).Inc()
	o.requestTime.WithLabelValues(op).Observe(e.Duration.Seconds())
}

// ImportStart implements importserver.Observer.
func (o *importServerObserver) ImportStart(ctx context.Context, _ importserver.ImportStartEvent) context.Context {
	o.running.Inc()
	return ctx
}

// ImportEnd implements importserver.Observer.
func (o *importServerObserver) ImportEnd(_ context.Context, e importserver.ImportEvent) {
	o.running.Dec()
	typ := oneOf(e.Import.Type, OtherLabel, importServerTypes...)
	result := "unrecorded"
	if e.Recorded {
		result = oneOf(e.Result, OtherLabel, importserver.Complete, importserver.Failed, importserver.Canceled)
	}
	o.imports.WithLabelValues(typ, result).Inc()
	o.importTime.WithLabelValues(typ).Observe(e.Duration.Seconds())
}

// StaleFailed implements importserver.Observer.
func (o *importServerObserver) StaleFailed(_ context.Context, e importserver.ImportEvent) {
	o.stale.WithLabelValues(oneOf(e.Import.Type, OtherLabel, importServerTypes...)).Inc()
}

// WriteGuarded implements importserver.Observer.
func (o *importServerObserver) WriteGuarded(_ context.Context, e importserver.GuardEvent) {
	o.writes.WithLabelValues(oneOf(e.Action, OtherLabel, importserver.GuardRefused, importserver.GuardCanceledPreImport,
		importserver.GuardAllowedDuringPreImport, importserver.GuardUnavailable)).Inc()
}

// DeliveryStart implements importserver.Observer: the attempt's duration
// comes with DeliveryEnd's event.
func (o *importServerObserver) DeliveryStart(ctx context.Context, _ importserver.DeliveryStartEvent) context.Context {
	return ctx
}

// DeliveryEnd implements importserver.Observer.
func (o *importServerObserver) DeliveryEnd(_ context.Context, e importserver.DeliveryEvent) {
	if e.Abandoned {
		return // the server stopped: not an attempt that counts
	}
	o.attempts.WithLabelValues(oneOf(e.Result, OtherLabel, importserver.Delivered, importserver.Retry, importserver.GiveUp)).Inc()
	o.attemptTime.Observe(e.Duration.Seconds())
}

// OutboxChecked implements importserver.Observer.
func (o *importServerObserver) OutboxChecked(_ context.Context, e importserver.OutboxStats) {
	o.pending.Set(float64(e.Pending))
	o.failed.Set(float64(e.Failed))
	o.oldestWaiter.Set(e.OldestPending.Seconds())
}
