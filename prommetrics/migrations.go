package prommetrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bbm"
)

// MigrationLister lists bbm migrations; bbm.Store (bbm.PostgresStore,
// bbmtest.Store) implements it.
type MigrationLister interface {
	Migrations(ctx context.Context, statuses ...bbm.Status) ([]*bbm.Migration, error)
}

// DefaultScrapeTimeout bounds the query WatchMigrations runs per scrape.
const DefaultScrapeTimeout = 5 * time.Second

// WatchMigrations registers ferry_bbm_migrations{status}: how many
// migrations are in each status, read from l at every scrape. It counts all
// of them, whichever process runs them, which events of one process could
// not; the query reads one small table. A scrape that cannot read them
// reports the error and the other metrics. Call it once per Metrics.
func (m *Metrics) WatchMigrations(l MigrationLister) error {
	if m == nil || l == nil {
		return fmt.Errorf("prommetrics: WatchMigrations: nil Metrics or MigrationLister")
	}
	c := &migrationsCollector{l: l, timeout: DefaultScrapeTimeout,
		desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "bbm", "migrations"),
			"Migrations by status (paused, active, running, finished, failed), read from the bbm store at scrape time.",
			[]string{"status"}, nil)}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("prommetrics: WatchMigrations: %w", err)
	}
	return nil
}

type migrationsCollector struct {
	l       MigrationLister
	timeout time.Duration
	desc    *prometheus.Desc
}

var statuses = []bbm.Status{bbm.StatusPaused, bbm.StatusActive, bbm.StatusRunning, bbm.StatusFinished, bbm.StatusFailed}

func (c *migrationsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *migrationsCollector) Collect(ch chan<- prometheus.Metric) {
	// Collect has no context of its own; the timeout keeps a stuck
	// database from stalling the scrape.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ms, err := c.l.Migrations(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("prommetrics: listing bbm migrations: %w", err))
		return
	}
	counts := make(map[bbm.Status]int, len(statuses))
	for _, m := range ms {
		counts[m.Status]++
	}
	for _, s := range statuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
