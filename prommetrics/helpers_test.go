package prommetrics_test

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/prommetrics"
)

var quiet = slog.New(slog.DiscardHandler)

// newMetrics returns Metrics on a fresh registry.
func newMetrics(t testing.TB) (*prommetrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg, prommetrics.Options{})
	require.NoError(t, err)
	return m, reg
}

// value gathers reg and returns the metric name whose labels include
// labels (given as name, value pairs): a counter's or gauge's value, a
// histogram's sample count. ok is false when there is no such series.
func value(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	require.Zero(t, len(labels)%2, "labels come in pairs")
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// must is value that requires the series to exist.
func must(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(t, reg, name, labels...)
	require.True(t, ok, "no series %s%v", name, labels)
	return v
}

func hasLabel(m *dto.Metric, name, val string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == val
		}
	}
	return false
}
