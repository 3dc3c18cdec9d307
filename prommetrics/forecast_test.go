package prommetrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
)

func TestWatchEnqueuer(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	add := func(path string, tags int) enqueuer.Repository {
		r, err := store.Add(ctx, enqueuer.NewRepository{Path: path, TagCount: tags, CreatedAt: now.Add(-time.Hour)})
		require.NoError(t, err)
		return r
	}
	step := func(r enqueuer.Repository, ev enqueuer.Event, at time.Time) enqueuer.Repository {
		r, err := store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: ev, At: at})
		require.NoError(t, err)
		return r
	}
	enq, err := enqueuer.New(enqueuer.Config{
		Store: store, Registry: enqueuertest.NewRegistry(enqueuertest.RegistryOptions{}),
		Locker: leasetest.NewLocker(leasetest.Options{}), Capacity: func(context.Context) int { return 1 },
		Clock: func() time.Time { return now }, Logger: quiet,
	})
	require.NoError(t, err)
	require.NoError(t, m.WatchEnqueuer(enq))
	add("g/waiting", 10)
	d := add("g/deferred", 10)
	_, err = store.Defer(ctx, enqueuer.Deferral{ID: d.ID, From: d.State, Reason: "x", Key: "k"})
	require.NoError(t, err)
	require.Equal(t, 0.0, must(t, reg, "ferry_enqueuer_forecast_known"))
	_, ok := value(t, reg, "ferry_enqueuer_forecast_remaining_seconds")
	require.False(t, ok, "no forecast before an import finished")

	r := step(add("g/done", 10), enqueuer.EventStartPreImport, now.Add(-time.Minute))
	r = step(r, enqueuer.EventFinishPreImport, now.Add(-30*time.Second))
	r = step(r, enqueuer.EventStartImport, now.Add(-30*time.Second))
	step(r, enqueuer.EventFinishImport, now.Add(-20*time.Second)) // 40s for 10 tags
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_forecast_known"))
	require.Equal(t, 40.0, must(t, reg, "ferry_enqueuer_forecast_remaining_seconds"), "one waiting repository like the finished one")
	require.Equal(t, 2.0, must(t, reg, "ferry_enqueuer_repositories", "state", "default"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_repositories", "state", "import_done"))
	require.Equal(t, 0.0, must(t, reg, "ferry_enqueuer_repositories", "state", "importing"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_repositories_deferred"))

	require.Error(t, m.WatchEnqueuer(enq), "a second WatchEnqueuer collides")
	m2, reg2 := newMetrics(t)
	require.Error(t, m2.WatchEnqueuer(nil))
	require.NoError(t, m2.WatchEnqueuer(failingForecaster{}))
	_, err = reg2.Gather()
	require.ErrorContains(t, err, "enqueuer forecast")
}

type failingForecaster struct{}

func (failingForecaster) Forecast(context.Context, enqueuer.ForecastOptions) (enqueuer.Forecast, error) {
	return enqueuer.Forecast{}, errors.New("database down")
}
