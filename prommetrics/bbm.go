package prommetrics

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bbm"
)

// BBM returns the bbm.Observer that moves the ferry_bbm_* metrics, for
// bbm.Options.Observer (combine it with others with bbm.MultiObserver).
func (m *Metrics) BBM() bbm.Observer {
	if m == nil {
		return bbm.ObserverFuncs{}
	}
	return m.bbm
}

// bbmObserver implements bbm.Observer.
type bbmObserver struct {
	migration *boundedLabel

	// mu guards byMigration, the per-migration series, looked up once per
	// migration rather than hashed on every event.
	mu          sync.RWMutex
	byMigration map[string]*bbmSeries

	started       *prometheus.CounterVec
	finished      *prometheus.CounterVec
	failed        *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	batchSize     *prometheus.HistogramVec
	nextBatchSize *prometheus.GaugeVec
	rows          *prometheus.CounterVec
	rowsPerSecond *prometheus.GaugeVec
	throttles     prometheus.Counter
	throttled     prometheus.Counter
	done          *prometheus.CounterVec
}

var _ bbm.Observer = (*bbmObserver)(nil)

func newBBMObserver(opts Options) *bbmObserver {
	const sub = "bbm"
	mig := []string{"migration"}
	return &bbmObserver{
		migration:   newBoundedLabel(opts.MaxLabelValues),
		byMigration: map[string]*bbmSeries{},
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "jobs_started_total", Help: "Job attempts started, by migration."}, mig),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "jobs_finished_total", Help: "Job attempts that finished successfully, by migration."}, mig),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "jobs_failed_total", Help: "Job attempts that failed, by migration and bbm error code (job_failed, job_panicked, job_timeout, job_cancelled, ...; unrecorded when the outcome could not be stored)."},
			[]string{"migration", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "job_duration_seconds", Help: "Duration of a job attempt's transaction, by migration and outcome (finished, failed).",
			Buckets: bbmJobBuckets}, []string{"migration", "outcome"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "job_batch_size", Help: "Rows per job attempt (as its range was cut), by migration.",
			Buckets: bbmBatchBuckets}, mig),
		nextBatchSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "next_batch_size", Help: "Batch size the next new job of a running migration gets (moves with adaptive sizing); removed when the migration is done."}, mig),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "rows_processed_total", Help: "Rows in finished jobs' ranges, by migration; rate() of it is the rows/s of the backfill."}, mig),
		rowsPerSecond: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "job_rows_per_second", Help: "Rate of the last finished job (rows / transaction time), by migration; removed when the migration is done."}, mig),
		throttles: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "throttled_total", Help: "Times the Throttler held jobs back."}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "throttled_seconds_total", Help: "Time workers waited because the Throttler held jobs back."}),
		done: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "migrations_done_total", Help: "Migrations this process's workers finished or failed, by status (finished, failed)."},
			[]string{"status"}),
	}
}

// bbmSeries are one migration label's series.
type bbmSeries struct {
	started, finished, rows  prometheus.Counter
	finishedTime, failedTime prometheus.Observer
	batchSize                prometheus.Observer
	nextBatchSize, rate      prometheus.Gauge
}

// series returns the series of a migration. Names past the label bound
// share the OtherLabel series, which are not cached under their names.
func (o *bbmObserver) series(name string) *bbmSeries {
	o.mu.RLock()
	s, ok := o.byMigration[name]
	o.mu.RUnlock()
	if ok {
		return s
	}
	mig := o.migration.value(name)
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.byMigration[mig]; ok {
		return s
	}
	s = &bbmSeries{
		started:       o.started.WithLabelValues(mig),
		finished:      o.finished.WithLabelValues(mig),
		rows:          o.rows.WithLabelValues(mig),
		finishedTime:  o.duration.WithLabelValues(mig, "finished"),
		failedTime:    o.duration.WithLabelValues(mig, "failed"),
		batchSize:     o.batchSize.WithLabelValues(mig),
		nextBatchSize: o.nextBatchSize.WithLabelValues(mig),
		rate:          o.rowsPerSecond.WithLabelValues(mig),
	}
	o.byMigration[mig] = s
	return s
}

func (o *bbmObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.started, o.finished, o.failed, o.duration, o.batchSize, o.nextBatchSize,
		o.rows, o.rowsPerSecond, o.throttles, o.throttled, o.done}
}

// JobStart implements bbm.Observer. The attempt's duration comes with
// JobEnd's event, so the context goes back as it came.
func (o *bbmObserver) JobStart(ctx context.Context, e bbm.JobStartEvent) context.Context {
	s := o.series(e.Migration)
	s.started.Inc()
	s.batchSize.Observe(float64(e.Rows))
	return ctx
}

// JobEnd implements bbm.Observer.
func (o *bbmObserver) JobEnd(_ context.Context, e bbm.JobEvent) {
	s := o.series(e.Migration)
	if e.NextBatchSize > 0 {
		s.nextBatchSize.Set(float64(e.NextBatchSize))
	}
	if e.Err != nil {
		code := "unrecorded"
		var je *bbm.JobError
		if errors.As(e.Err, &je) {
			code = string(je.Code)
		}
		o.failed.WithLabelValues(o.migration.value(e.Migration), code).Inc()
		s.failedTime.Observe(e.Duration.Seconds())
		return
	}
	s.finished.Inc()
	s.finishedTime.Observe(e.Duration.Seconds())
	s.rows.Add(float64(e.Rows))
	if d := e.Duration.Seconds(); d > 0 {
		s.rate.Set(float64(e.Rows) / d)
	}
}

// Throttled implements bbm.Observer.
func (o *bbmObserver) Throttled(_ context.Context, e bbm.ThrottleEvent) {
	o.throttles.Inc()
	o.throttled.Add(e.Wait.Seconds())
}

// MigrationEnded implements bbm.Observer. It drops the migration's gauges,
// which would otherwise show a done migration's last values forever.
func (o *bbmObserver) MigrationEnded(_ context.Context, m *bbm.Migration) {
	o.done.WithLabelValues(oneOf(m.Status, OtherLabel, bbm.StatusFinished, bbm.StatusFailed)).Inc()
	mig := o.migration.value(m.Name)
	if mig == OtherLabel {
		return // shared with other migrations that may still run
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byMigration, mig) // its gauge children are about to be detached
	o.nextBatchSize.DeleteLabelValues(mig)
	o.rowsPerSecond.DeleteLabelValues(mig)
}
