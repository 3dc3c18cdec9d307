package prommetrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/storage"
)

// Storage returns the storage.Observer that moves the ferry_storage_*
// metrics, for storage.Config.Observer.
func (m *Metrics) Storage() storage.Observer {
	if m == nil {
		return storage.ObserverFuncs{}
	}
	return m.storage
}

type storageObserver struct {
	replica *boundedLabel

	reads     *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	checks    *prometheus.CounterVec
	checkTime *prometheus.HistogramVec
	fallbacks *prometheus.CounterVec
}

var _ storage.Observer = (*storageObserver)(nil)

func newStorageObserver(opts Options) *storageObserver {
	const sub = "storage"
	rep := []string{"replica"}
	return &storageObserver{
		replica: newBoundedLabel(opts.MaxLabelValues),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "reads_total", Help: "Reads routed by DB.Read/Choose, by target (primary, replica) and reason (caught_up, use_primary, no_replicas, replicas_behind, replicas_down)."},
			[]string{"target", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "replica_lag_bytes", Help: "WAL bytes the replica had not replayed at its last check."}, rep),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "replica_up", Help: "1 after a successful check of the replica, 0 after a failed check or a read that failed on its connection (it then takes no reads for ReplicaRetryAfter)."}, rep),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "replica_checks_total", Help: "Checks of a replica's replay position, by replica and result (ok, error)."},
			[]string{"replica", "result"}),
		checkTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "replica_check_duration_seconds", Help: "Duration of a replica check (replica and primary round trips).",
			Buckets: replicaCheckBuckets}, rep),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "replica_fallbacks_total", Help: "Reads that failed on a replica's connection and ran on the primary instead."}, rep),
	}
}

func (o *storageObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.reads, o.lag, o.up, o.checks, o.checkTime, o.fallbacks}
}

// ReadRouted implements storage.Observer.
func (o *storageObserver) ReadRouted(_ context.Context, e storage.RouteEvent) {
	reason := oneOf(e.Reason, OtherLabel, storage.RouteCaughtUp, storage.RouteUsePrimary,
		storage.RouteNoReplicas, storage.RouteReplicasBehind, storage.RouteReplicasDown)
	o.reads.WithLabelValues(e.Target.String(), reason).Inc()
}

// ReplicaCheckStart implements storage.Observer: the check's duration
// comes with ReplicaCheckEnd's event.
func (o *storageObserver) ReplicaCheckStart(ctx context.Context, _ storage.ReplicaCheckStartEvent) context.Context {
	return ctx
}

// ReplicaCheckEnd implements storage.Observer.
func (o *storageObserver) ReplicaCheckEnd(_ context.Context, e storage.ReplicaEvent) {
	if e.Abandoned {
		return // says nothing about the replica
	}
	r := o.replica.value(e.Replica)
	o.checkTime.WithLabelValues(r).Observe(e.Duration.Seconds())
	if e.Err != nil {
		o.checks.WithLabelValues(r, "error").Inc()
		o.up.WithLabelValues(r).Set(0)
		return
	}
	o.checks.WithLabelValues(r, "ok").Inc()
	o.up.WithLabelValues(r).Set(1)
	o.lag.WithLabelValues(r).Set(float64(e.LagBytes))
}

// ReplicaFellBack implements storage.Observer.
func (o *storageObserver) ReplicaFellBack(_ context.Context, e storage.FallbackEvent) {
	r := o.replica.value(e.Replica)
	o.fallbacks.WithLabelValues(r).Inc()
	o.up.WithLabelValues(r).Set(0)
}
