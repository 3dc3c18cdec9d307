package prommetrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/enqueuer"
)

// EnqueuerForecaster forecasts the enqueuer's remaining work;
// *enqueuer.Enqueuer implements it.
type EnqueuerForecaster interface {
	Forecast(ctx context.Context, opts enqueuer.ForecastOptions) (enqueuer.Forecast, error)
}

// WatchEnqueuer registers, read from f at every scrape (f.Forecast, which
// counts the repositories and reads the latest finished imports):
//
//   - ferry_enqueuer_repositories{state}: repositories in each state;
//   - ferry_enqueuer_repositories_deferred: waiting ones a filter defers;
//   - ferry_enqueuer_forecast_known: 1 once an import finished and the
//     forecast means something, else 0;
//   - ferry_enqueuer_forecast_remaining_seconds: how long the repositories
//     that can start will take (only while known).
//
// They count every repository whoever runs it, which one process's events
// could not. A scrape that cannot read them reports the error and the
// other metrics. Call it once per Metrics.
func (m *Metrics) WatchEnqueuer(f EnqueuerForecaster) error {
	if m == nil || f == nil {
		return fmt.Errorf("prommetrics: WatchEnqueuer: nil Metrics or EnqueuerForecaster")
	}
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "enqueuer", n) }
	c := &forecastCollector{f: f, timeout: DefaultScrapeTimeout,
		states: prometheus.NewDesc(name("repositories"),
			"Repositories by migration state (default, pre_importing, pre_import_done, importing, import_done, import_aborted, import_skipped), read at scrape time.",
			[]string{"state"}, nil),
		deferred: prometheus.NewDesc(name("repositories_deferred"),
			"Waiting repositories that a filter (enqueuer.Config.Defer) holds back, read at scrape time.", nil, nil),
		known: prometheus.NewDesc(name("forecast_known"),
			"1 when the forecast has measured durations to go by (an import finished), else 0.", nil, nil),
		remaining: prometheus.NewDesc(name("forecast_remaining_seconds"),
			"Forecast time until every repository that can start is imported, from measured durations by tag-count bucket and the capacity (absent until known).", nil, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("prommetrics: WatchEnqueuer: %w", err)
	}
	return nil
}

type forecastCollector struct {
	f                                  EnqueuerForecaster
	timeout                            time.Duration
	states, deferred, known, remaining *prometheus.Desc
}

func (c *forecastCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.states
	ch <- c.deferred
	ch <- c.known
	ch <- c.remaining
}

func (c *forecastCollector) Collect(ch chan<- prometheus.Metric) {
	// Collect has no context of its own; the timeout keeps a stuck
	// database from stalling the scrape.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	f, err := c.f.Forecast(ctx, enqueuer.ForecastOptions{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.states, fmt.Errorf("prommetrics: enqueuer forecast: %w", err))
		return
	}
	for _, s := range enqueuer.States {
		ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(f.Counts.States[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.deferred, prometheus.GaugeValue, float64(f.Counts.Deferred))
	known := 0.0
	if f.Known {
		known = 1
		ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, f.Remaining.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.known, prometheus.GaugeValue, known)
}
