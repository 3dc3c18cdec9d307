package prommetrics

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "ferry"

// DefaultMaxLabelValues is Options.MaxLabelValues' default.
const DefaultMaxLabelValues = 100

// Options tunes New. The zero value is ready to use.
type Options struct {
	// MaxLabelValues bounds the distinct values of each label whose
	// values the host defines: bbm migration names, lease keys and
	// replica names. Past it, new values are reported as OtherLabel
	// ("other"), so a host that uses per-repository lease keys cannot
	// blow up the series count. Default DefaultMaxLabelValues.
	MaxLabelValues int
	// ConstLabels are added to every metric, e.g. {"component": "worker"}.
	// Default: none.
	ConstLabels prometheus.Labels
}

// Metrics holds Ferry's Prometheus metrics and hands out the observers
// that move them. Its methods are safe for concurrent use; one Metrics
// serves any number of workers, enqueuers, DBs, lockers and importers. A
// nil *Metrics hands out empty observers, so a host may leave metrics off
// without changing its wiring.
type Metrics struct {
	reg      prometheus.Registerer
	bbm      *bbmObserver
	enqueuer *enqueuerObserver
	storage  *storageObserver
	lease    *leaseObserver
	transfer *transferObserver

	importServer *importServerObserver
}

// New creates Ferry's metrics and registers them on reg (use
// prometheus.DefaultRegisterer for the global registry, or NewRegistry). It
// fails when reg refuses one of them, for example because New already ran
// on it; nothing stays registered then.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("prommetrics: nil Registerer")
	}
	if opts.MaxLabelValues <= 0 {
		opts.MaxLabelValues = DefaultMaxLabelValues
	}
	if len(opts.ConstLabels) > 0 {
		reg = prometheus.WrapRegistererWith(opts.ConstLabels, reg)
	}
	m := &Metrics{
		reg:      reg,
		bbm:      newBBMObserver(opts),
		enqueuer: newEnqueuerObserver(),
		storage:  newStorageObserver(opts),
		lease:    newLeaseObserver(opts),
		transfer: newTransferObserver(),

		importServer: newImportServerObserver(),
	}
	var all []prometheus.Collector
	all = append(all, m.bbm.collectors()...)
	all = append(all, m.enqueuer.collectors()...)
	all = append(all, m.storage.collectors()...)
	all = append(all, m.lease.collectors()...)
	all = append(all, m.transfer.collectors()...)
	all = append(all, m.importServer.collectors()...)
	if err := registerAll(reg, all); err != nil {
		return nil, err
	}
	return m, nil
}

// registerAll registers every collector or, on the first failure, none.
func registerAll(reg prometheus.Registerer, cs []prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("prommetrics: registering: %w", err)
		}
	}
	return nil
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, the usual base for a host's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g's metrics in the Prometheus text or OpenMetrics format,
// for a host's mux:
//
//	mux.Handle("GET /metrics", prommetrics.Handler(reg))
//
// A collector that fails (say WatchMigrations cannot reach the database)
// is reported in the answer's errors while the other metrics are still
// served.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
