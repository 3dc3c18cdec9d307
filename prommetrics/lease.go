package prommetrics

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/lease"
)

// Lease returns the lease.Observer that moves the ferry_lease_* metrics:
// wrap a Locker with lease.Observe(locker, metrics.Lease()), and pass it to
// pglease.FenceWith.
func (m *Metrics) Lease() lease.Observer {
	if m == nil {
		return lease.ObserverFuncs{}
	}
	return m.lease
}

type leaseObserver struct {
	key *boundedLabel

	acquires  *prometheus.CounterVec
	held      *prometheus.GaugeVec
	renewals  *prometheus.CounterVec
	renewTime *prometheus.HistogramVec
	lost      *prometheus.CounterVec
	relFailed *prometheus.CounterVec
	fences    *prometheus.CounterVec

	// mu guards byKey, the per-key series, looked up once per key.
	mu    sync.RWMutex
	byKey map[string]*leaseSeries
}

type leaseSeries struct {
	acquired, heldErr, acquireErr prometheus.Counter
	held                          prometheus.Gauge
	renewOK, renewLost, renewErr  prometheus.Counter
	renewTime                     prometheus.Observer
}

var _ lease.Observer = (*leaseObserver)(nil)

func newLeaseObserver(opts Options) *leaseObserver {
	const sub = "lease"
	key := []string{"key"}
	return &leaseObserver{
		key:   newBoundedLabel(opts.MaxLabelValues),
		byKey: map[string]*leaseSeries{},
		acquires: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "acquires_total", Help: "Lease acquisitions, by key and result (acquired, held: another holder has it, error)."},
			[]string{"key", "result"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: sub,
			Name: "held", Help: "Leases this process holds now, by key."}, key),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "renewals_total", Help: "Lease renewals, by key and result (ok, lost, error)."},
			[]string{"key", "result"}),
		renewTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "renew_duration_seconds", Help: "Latency of lease renewals, by key.", Buckets: leaseRenewBuckets}, key),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "lost_total", Help: "Leases found lost (expired or taken over) at a renewal or at their release, by key."}, key),
		relFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "release_failures_total", Help: "Releases that failed, leaving the lease to expire, by key."}, key),
		fences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "fence_checks_total", Help: "Fence checks of writes, by key and result (ok, fenced: refused for a stale token, error)."},
			[]string{"key", "result"}),
	}
}

func (o *leaseObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.acquires, o.held, o.renewals, o.renewTime, o.lost, o.relFailed, o.fences}
}

func (o *leaseObserver) series(key string) *leaseSeries {
	o.mu.RLock()
	s, ok := o.byKey[key]
	o.mu.RUnlock()
	if ok {
		return s
	}
	k := o.key.value(key)
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.byKey[k]; ok {
		return s
	}
	s = &leaseSeries{
		acquired:   o.acquires.WithLabelValues(k, string(lease.Acquired)),
		heldErr:    o.acquires.WithLabelValues(k, string(lease.AcquireHeld)),
		acquireErr: o.acquires.WithLabelValues(k, string(lease.AcquireFailed)),
		held:       o.held.WithLabelValues(k),
		renewOK:    o.renewals.WithLabelValues(k, "ok"),
		renewLost:  o.renewals.WithLabelValues(k, "lost"),
		renewErr:   o.renewals.WithLabelValues(k, "error"),
		renewTime:  o.renewTime.WithLabelValues(k),
	}
	o.byKey[k] = s
	return s
}

// AcquireStart implements lease.Observer: the metrics need only
// AcquireEnd's event.
func (o *leaseObserver) AcquireStart(ctx context.Context, _ lease.AcquireStartEvent) context.Context {
	return ctx
}

// AcquireEnd implements lease.Observer.
func (o *leaseObserver) AcquireEnd(_ context.Context, e lease.AcquireEvent) {
	s := o.series(e.Key)
	switch e.Result {
	case lease.Acquired:
		s.acquired.Inc()
		s.held.Inc()
	case lease.AcquireHeld:
		s.heldErr.Inc()
	default:
		s.acquireErr.Inc()
	}
}

// RenewStart implements lease.Observer: the renewal's duration comes with
// RenewEnd's event.
func (o *leaseObserver) RenewStart(ctx context.Context, _ lease.RenewStartEvent) context.Context {
	return ctx
}

// RenewEnd implements lease.Observer.
func (o *leaseObserver) RenewEnd(_ context.Context, e lease.RenewEvent) {
	s := o.series(e.Key)
	s.renewTime.Observe(e.Duration.Seconds())
	switch {
	case e.Err == nil:
		s.renewOK.Inc()
	case errors.Is(e.Err, lease.ErrLost):
		s.renewLost.Inc()
	default:
		s.renewErr.Inc()
	}
}

// LeaseEnded implements lease.Observer.
func (o *leaseObserver) LeaseEnded(_ context.Context, e lease.EndEvent) {
	s := o.series(e.Key)
	s.held.Dec()
	k := o.key.value(e.Key)
	switch e.Reason {
	case lease.EndLost:
		o.lost.WithLabelValues(k).Inc()
	case lease.EndReleaseFailed:
		o.relFailed.WithLabelValues(k).Inc()
	}
}

// FenceChecked implements lease.Observer.
func (o *leaseObserver) FenceChecked(_ context.Context, e lease.FenceEvent) {
	result := "ok"
	switch {
	case errors.Is(e.Err, lease.ErrFenced):
		result = "fenced"
	case e.Err != nil:
		result = "error"
	}
	o.fences.WithLabelValues(o.key.value(e.Key), result).Inc()
}
