package prommetrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

func TestNewRegistersOnceAndCleansUp(t *testing.T) {
	_, err := prommetrics.New(nil, prommetrics.Options{})
	require.Error(t, err)

	reg := prometheus.NewRegistry()
	_, err = prommetrics.New(reg, prommetrics.Options{})
	require.NoError(t, err)
	_, err = prommetrics.New(reg, prommetrics.Options{})
	var are prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &are, "a second New on one registry fails")

	// A failed New leaves nothing behind: a registry that already has one
	// of Ferry's names refuses New, and keeps only what it had.
	reg = prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_bbm_throttled_total", Help: "taken"}))
	_, err = prommetrics.New(reg, prommetrics.Options{})
	require.Error(t, err)
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestConstLabelsAndLabelBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg, prommetrics.Options{MaxLabelValues: 2, ConstLabels: prometheus.Labels{"component": "worker"}})
	require.NoError(t, err)
	for i := range 5 {
		m.BBM().JobStart(context.Background(), bbm.JobStartEvent{Migration: fmt.Sprintf("m%d", i), Rows: 10})
	}
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_jobs_started_total", "migration", "m0", "component", "worker"))
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_jobs_started_total", "migration", "m1"))
	require.Equal(t, 3.0, must(t, reg, "ferry_bbm_jobs_started_total", "migration", prommetrics.OtherLabel))
	n, err := testutil.GatherAndCount(reg, "ferry_bbm_jobs_started_total")
	require.NoError(t, err)
	require.Equal(t, 3, n, "the bound holds the series count")
}

// Values a core package does not define are never used as labels as they
// are.
func TestUnknownEnumValuesAreBounded(t *testing.T) {
	m, reg := newMetrics(t)
	ctx := context.Background()
	m.Enqueuer().StartImportEnd(ctx, enqueuer.StartEvent{ImportType: "weird", Result: "odd"})
	m.Enqueuer().RunEnd(ctx, enqueuer.RunEvent{Report: enqueuer.Report{Stopped: "custom"}})
	m.Storage().ReadRouted(ctx, storage.RouteEvent{Reason: "strange"})
	m.BBM().MigrationEnded(ctx, &bbm.Migration{Name: "x", Status: bbm.StatusPaused})
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_starts_total", "import_type", "other", "result", "other"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_runs_total", "stopped", "error"))
	require.Equal(t, 1.0, must(t, reg, "ferry_storage_reads_total", "target", "primary", "reason", "other"))
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_migrations_done_total", "status", "other"))
}

func TestHandlerServesMetrics(t *testing.T) {
	reg := prommetrics.NewRegistry()
	m, err := prommetrics.New(reg, prommetrics.Options{})
	require.NoError(t, err)
	m.Enqueuer().CapacityChecked(context.Background(), enqueuer.CapacityEvent{InProgress: 7, Capacity: 25})
	srv := httptest.NewServer(prommetrics.Handler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	for _, want := range []string{"ferry_enqueuer_imports_in_progress 7", "ferry_enqueuer_import_capacity 25", "go_goroutines", "process_"} {
		require.Contains(t, string(body), want)
	}
	require.NoError(t, testutil.ScrapeAndCompare(srv.URL, strings.NewReader(`
# HELP ferry_enqueuer_import_capacity Imports allowed in progress at once, as last asked by a run (Config.Capacity).
# TYPE ferry_enqueuer_import_capacity gauge
ferry_enqueuer_import_capacity 25
`), "ferry_enqueuer_import_capacity"))
}

// Every metric Ferry defines passes promlint (names, units, help), once
// each has a series.
func TestMetricsLint(t *testing.T) {
	m, reg := newMetrics(t)
	touchAll(m)
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// touchAll sends one event of every kind to every observer.
func touchAll(m *prommetrics.Metrics) {
	ctx := context.Background()
	b := m.BBM()
	jctx := b.JobStart(ctx, bbm.JobStartEvent{Migration: "m", Rows: 1})
	b.JobEnd(jctx, bbm.JobEvent{JobStartEvent: bbm.JobStartEvent{Migration: "m", Rows: 1}, Duration: 1, NextBatchSize: 1})
	b.JobEnd(ctx, bbm.JobEvent{JobStartEvent: bbm.JobStartEvent{Migration: "m"}, Err: io.EOF})
	b.Throttled(ctx, bbm.ThrottleEvent{Wait: 1})
	b.MigrationEnded(ctx, &bbm.Migration{Name: "n", Status: bbm.StatusFinished})
	e := m.Enqueuer()
	e.RunEnd(e.RunStart(ctx, enqueuer.RunStartEvent{}), enqueuer.RunEvent{})
	e.StartImportEnd(e.StartImportStart(ctx, enqueuer.StartImportStartEvent{}), enqueuer.StartEvent{})
	e.Skipped(ctx, enqueuer.SkipEvent{})
	e.Aborted(ctx, enqueuer.AbortEvent{})
	e.CapacityChecked(ctx, enqueuer.CapacityEvent{})
	e.Reconciled(ctx, enqueuer.ReconcileEvent{})
	e.NotifyEnd(e.NotifyStart(ctx, enqueuer.NotifyStartEvent{}), enqueuer.NotifyEvent{})
	s := m.Storage()
	s.ReadRouted(ctx, storage.RouteEvent{})
	s.ReplicaCheckEnd(s.ReplicaCheckStart(ctx, storage.ReplicaCheckStartEvent{Replica: "r"}), storage.ReplicaEvent{Replica: "r"})
	s.ReplicaFellBack(ctx, storage.FallbackEvent{Replica: "r"})
	l := m.Lease()
	l.AcquireEnd(l.AcquireStart(ctx, lease.AcquireStartEvent{Key: "k"}), lease.AcquireEvent{Key: "k", Result: lease.Acquired})
	l.RenewEnd(l.RenewStart(ctx, lease.RenewStartEvent{Key: "k"}), lease.RenewEvent{Key: "k"})
	l.LeaseEnded(ctx, lease.EndEvent{Key: "k", Reason: lease.EndLost})
	l.LeaseEnded(ctx, lease.EndEvent{Key: "k", Reason: lease.EndReleaseFailed})
	l.FenceChecked(ctx, lease.FenceEvent{Key: "k"})
	tr := m.Transfer()
	tr.BlobEnd(tr.BlobStart(ctx, transfer.BlobStartEvent{}), transfer.BlobEvent{Result: transfer.Result{Bytes: 1}})
	tr.BlobEnd(ctx, transfer.BlobEvent{Err: io.EOF})
	tr.Retried(ctx, transfer.RetryEvent{Op: "copy", Cause: transfer.RetryThrottled})
	tr.RepositoryEnd(tr.RepositoryStart(ctx, transfer.RepositoryStartEvent{}), transfer.RepositoryEvent{Pass: transfer.PreImport, Outcome: transfer.RepositoryImported, Report: transfer.RepositoryReport{Duration: 1}})
	tr.PassEnd(tr.PassStart(ctx, transfer.PassStartEvent{}), transfer.PassEvent{Pass: transfer.FinalImport})
	is := m.ImportServer()
	is.RequestEnd(is.RequestStart(ctx, importserver.RequestStartEvent{}), importserver.RequestEvent{Op: importserver.OpStart, Code: 202})
	is.ImportEnd(is.ImportStart(ctx, importserver.ImportStartEvent{}), importserver.ImportEvent{Import: importserver.Import{Type: importserver.PreImport}, Result: importserver.Complete, Recorded: true})
	is.StaleFailed(ctx, importserver.ImportEvent{Import: importserver.Import{Type: importserver.FinalImport}})
	is.WriteGuarded(ctx, importserver.GuardEvent{Action: importserver.GuardRefused})
	is.DeliveryEnd(is.DeliveryStart(ctx, importserver.DeliveryStartEvent{}), importserver.DeliveryEvent{Result: importserver.Delivered})
	is.OutboxChecked(ctx, importserver.OutboxStats{Pending: 1})
}

// The metrics table in doc.go lists every metric there is.
func TestDocListsEveryMetric(t *testing.T) {
	m, reg := newMetrics(t)
	touchAll(m)
	require.NoError(t, m.WatchMigrations(bbmtest.NewStore(bbmtest.StoreOptions{})))
	require.NoError(t, m.WatchEnqueuer(knownForecaster{}))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	for _, mf := range mfs {
		require.Regexp(t, `//\t`+mf.GetName()+` +`+strings.ToLower(mf.GetType().String())+` `, string(doc), "doc.go's table lacks %s", mf.GetName())
	}
	require.Len(t, regexp.MustCompile(`(?m)^//\tferry_`).FindAllString(string(doc), -1), len(mfs), "doc.go lists no metric that does not exist")
}

func TestNilMetricsHandsOutEmptyObservers(t *testing.T) {
	var m *prommetrics.Metrics
	touchAll(m)
	require.Error(t, m.WatchMigrations(bbmtest.NewStore(bbmtest.StoreOptions{})))
}

// knownForecaster always has a forecast.
type knownForecaster struct{}

func (knownForecaster) Forecast(context.Context, enqueuer.ForecastOptions) (enqueuer.Forecast, error) {
	return enqueuer.Forecast{Known: true, Remaining: time.Minute, Counts: enqueuer.Counts{States: map[enqueuer.State]int{}}}, nil
}
