package prommetrics_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// bbmWorker is a SyncWorker on bbmtest's in-memory store and catalog, with
// a table of keys 1..maxKey.
func bbmWorker(t *testing.T, store bbm.Store, obs bbm.Observer, throttle bbm.Throttler, work bbm.Work, maxKey int64) *bbm.SyncWorker {
	t.Helper()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:   store,
		Catalog: bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: maxKey}),
		Logger:  quiet, Observer: obs, Throttler: throttle,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond,
		Interval: time.Millisecond, MaxBackoff: time.Millisecond,
		Adaptive: bbm.AdaptiveOptions{TargetJobDuration: 50 * time.Millisecond},
	})
	require.NoError(t, w.Register(work))
	return w
}

func TestBBMMetricsMove(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	store := bbmtest.NewStore(bbmtest.StoreOptions{})
	require.NoError(t, m.WatchMigrations(store))

	// The Throttler holds once; the Work fails its first attempt, and
	// checks the per-migration gauges while the migration runs.
	var held, failed atomic.Bool
	throttle := bbm.ThrottlerFunc(func(context.Context) (bbm.Decision, error) {
		if held.CompareAndSwap(false, true) {
			return bbm.Decision{Hold: true, Reason: "test", RetryAfter: 20 * time.Millisecond}, nil
		}
		return bbm.Decision{}, nil
	})
	var gaugesSeen atomic.Bool
	work := bbm.WorkFunc("fill", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		if failed.CompareAndSwap(false, true) {
			return errors.New("transient")
		}
		if b.End.Equal(bbm.IntKey(100)) {
			_, a := value(t, reg, "ferry_bbm_next_batch_size", "migration", "fill")
			_, b := value(t, reg, "ferry_bbm_job_rows_per_second", "migration", "fill")
			gaugesSeen.Store(a && b)
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	w := bbmWorker(t, store, m.BBM(), throttle, work, 100)
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "fill", BatchSize: 10})
	require.NoError(t, err)
	_, err = w.Admin().Register(ctx, bbm.Definition{Name: "later", Table: "items", Column: "id", Work: "fill", BatchSize: 10})
	require.NoError(t, err)
	_, err = w.Admin().Pause(ctx, "later")
	require.NoError(t, err)

	require.NoError(t, w.Run(ctx))

	started := must(t, reg, "ferry_bbm_jobs_started_total", "migration", "fill")
	finished := must(t, reg, "ferry_bbm_jobs_finished_total", "migration", "fill")
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_jobs_failed_total", "migration", "fill", "code", "job_failed"))
	require.Equal(t, started, finished+1)
	require.Equal(t, started, must(t, reg, "ferry_bbm_job_batch_size", "migration", "fill"))
	require.Equal(t, finished, must(t, reg, "ferry_bbm_job_duration_seconds", "migration", "fill", "outcome", "finished"))
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_job_duration_seconds", "migration", "fill", "outcome", "failed"))
	require.Equal(t, 100.0, must(t, reg, "ferry_bbm_rows_processed_total", "migration", "fill"), "every key once")
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_throttled_total"))
	require.InDelta(t, 0.02, must(t, reg, "ferry_bbm_throttled_seconds_total"), 1e-9)
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_migrations_done_total", "status", "finished"))
	require.True(t, gaugesSeen.Load(), "per-migration gauges exist while the migration runs")
	_, ok := value(t, reg, "ferry_bbm_next_batch_size", "migration", "fill")
	require.False(t, ok, "a done migration's gauges are dropped")

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP ferry_bbm_migrations Migrations by status (paused, active, running, finished, failed), read from the bbm store at scrape time.
# TYPE ferry_bbm_migrations gauge
ferry_bbm_migrations{status="active"} 0
ferry_bbm_migrations{status="failed"} 0
ferry_bbm_migrations{status="finished"} 1
ferry_bbm_migrations{status="paused"} 1
ferry_bbm_migrations{status="running"} 0
`), "ferry_bbm_migrations"))
}

func TestBBMFailedMigrationAndUnrecordedOutcome(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	work := bbm.WorkFunc("boom", func(context.Context, storage.Querier, bbm.Batch) error { panic("boom") })
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:   bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog: bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10}),
		Logger:  quiet, Observer: m.BBM(), MaxJobAttempts: 2,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond,
	})
	require.NoError(t, w.Register(work))
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "boom", Table: "items", Column: "id", Work: "boom", BatchSize: 10})
	require.NoError(t, err)
	require.ErrorIs(t, w.Run(ctx), bbm.ErrMigrationFailed)
	require.Equal(t, 2.0, must(t, reg, "ferry_bbm_jobs_failed_total", "migration", "boom", "code", "job_panicked"))
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_migrations_done_total", "status", "failed"))

	// An outcome the store could not record is a failure of its own kind.
	m.BBM().JobEnd(ctx, bbm.JobEvent{JobStartEvent: bbm.JobStartEvent{Migration: "boom"}, Err: errors.New("store down")})
	require.Equal(t, 1.0, must(t, reg, "ferry_bbm_jobs_failed_total", "migration", "boom", "code", "unrecorded"))
}

func TestWatchMigrationsReportsStoreErrors(t *testing.T) {
	m, reg := newMetrics(t)
	require.Error(t, m.WatchMigrations(nil))
	require.NoError(t, m.WatchMigrations(failingLister{}))
	_, err := reg.Gather()
	require.ErrorContains(t, err, "listing bbm migrations")
	require.Error(t, m.WatchMigrations(failingLister{}), "a second WatchMigrations collides")
}

type failingLister struct{}

func (failingLister) Migrations(context.Context, ...bbm.Status) ([]*bbm.Migration, error) {
	return nil, errors.New("database down")
}
