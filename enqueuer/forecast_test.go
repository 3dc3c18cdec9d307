package enqueuer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
)

// The forecast on a small case worked out by hand: two finished buckets
// (10 tags in 10s, 100 tags in 100s), capacity 2, one 100-tag import
// running for 40s, and 10, 55 and 1,000 tags waiting.
func TestForecastByTagBuckets(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		add := func(path string, tags int, created time.Time) enqueuer.Repository {
			r, err := e.store.Add(ctx, enqueuer.NewRepository{Path: path, TagCount: tags, CreatedAt: created})
			require.NoError(t, err)
			return r
		}
		step := func(r enqueuer.Repository, ev enqueuer.Event, at time.Time) enqueuer.Repository {
			r, err := e.store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: ev, At: at})
			require.NoError(t, err)
			return r
		}
		finish := func(path string, tags int, took time.Duration) {
			r := add(path, tags, epoch)
			start := now.Add(-time.Hour)
			r = step(r, enqueuer.EventStartPreImport, start)
			r = step(r, enqueuer.EventFinishPreImport, start.Add(took/2))
			r = step(r, enqueuer.EventStartImport, start.Add(took/2))
			step(r, enqueuer.EventFinishImport, start.Add(took))
		}
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(2), Locker: locker, Clock: func() time.Time { return now }})

		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.False(t, f.Known, "nothing finished yet")

		finish("done/a", 10, 10*time.Second)
		finish("done/b", 100, 100*time.Second)
		step(add("run/a", 100, epoch), enqueuer.EventStartPreImport, now.Add(-40*time.Second))
		for i, tags := range []int{10, 55, 1000} {
			add(fmt.Sprintf("wait/r%d", i), tags, epoch.Add(time.Duration(i)*time.Minute))
		}
		deferred := add("wait/deferred", 5, epoch)
		_, err = e.store.Defer(ctx, enqueuer.Deferral{ID: deferred.ID, From: deferred.State, Reason: "x", Key: "k"})
		require.NoError(t, err)

		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.True(t, f.Known)
		require.Equal(t, 2, f.Capacity)
		// Units free at 60s (the running one: 100s expected, 40s done);
		// 10 tags: 0-10s; 55 tags (55s, interpolated): 10-65s; 1,000
		// tags (1,000s, along the line of the two buckets): 60-1,060s.
		require.Equal(t, 1060*time.Second, f.Remaining)
		require.Equal(t, now.Add(1060*time.Second), f.ETA)
		require.Equal(t, 1, f.Counts.Deferred)
		require.Equal(t, 3, f.Counts.Waiting())
		var b100 enqueuer.BucketForecast
		for _, b := range f.Buckets {
			if b.MinTags <= 100 && 100 <= b.MaxTags {
				b100 = b
			}
		}
		require.Equal(t, enqueuer.BucketForecast{MinTags: 51, MaxTags: 100, Finished: 1, MeanTags: 100, MeanDuration: 100 * time.Second,
			MeanPreImport: 50 * time.Second, InProgress: 1, Waiting: 1}, b100)

		// With a window of two, the 1,000-tag repository is beyond it and
		// counts as the window's mean (32.5s), spread over the units.
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{Window: 2})
		require.NoError(t, err)
		require.Equal(t, 78750*time.Millisecond, f.Remaining)

		// An import that overruns its expected time needs a tenth of what
		// it has run; the capacity can be given.
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{Now: now.Add(1000 * time.Second), Capacity: 100})
		require.NoError(t, err)
		require.Equal(t, 1000*time.Second, f.Remaining, "the 1,000-tag one, started at once")
	})
}

// Imports in progress are forecast by phase: a final import needs what is
// left of the final phase, however long its pre-import took; a pre-import
// needs what is left of it and then the whole final phase.
func TestForecastRunningImportsByPhase(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		add := func(path string) enqueuer.Repository {
			r, err := e.store.Add(ctx, enqueuer.NewRepository{Path: path, TagCount: 10, CreatedAt: epoch})
			require.NoError(t, err)
			return r
		}
		step := func(r enqueuer.Repository, ev enqueuer.Event, ago time.Duration) enqueuer.Repository {
			r, err := e.store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: ev, At: now.Add(-ago)})
			require.NoError(t, err)
			return r
		}
		// Measured: a 40s pre-import and a 10s final phase.
		r := step(add("done/a"), enqueuer.EventStartPreImport, time.Hour)
		r = step(r, enqueuer.EventFinishPreImport, time.Hour-40*time.Second)
		r = step(r, enqueuer.EventStartImport, time.Hour-45*time.Second)
		step(r, enqueuer.EventFinishImport, time.Hour-50*time.Second)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker, Clock: func() time.Time { return now }})

		// A final import 4s in (its pre-import took 100s): 6s left.
		final := step(add("run/final"), enqueuer.EventStartPreImport, 104*time.Second)
		final = step(final, enqueuer.EventFinishPreImport, 4*time.Second)
		final = step(final, enqueuer.EventStartImport, 4*time.Second)
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, 6*time.Second, f.Remaining)
		require.Equal(t, 40*time.Second, f.Buckets[0].MeanPreImport)
		require.Equal(t, 50*time.Second, f.Buckets[0].MeanDuration)

		// Overrunning its phase by 20s (30s in): a tenth of that, 3s.
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{Now: now.Add(26 * time.Second)})
		require.NoError(t, err)
		require.Equal(t, 3*time.Second, f.Remaining)

		// A pre-import 30s in: 10s of it and the 10s final phase.
		step(add("run/pre"), enqueuer.EventStartPreImport, 30*time.Second)
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, 20*time.Second, f.Remaining)
	})
}

// A repository larger than any finished one follows the power law through
// the two largest buckets: 10 tags in 10s and 100 in 40s make 1,000 tags
// 160s (4x per 10x), where a straight line would say 340s.
func TestForecastExtrapolatesAlongPowerLaw(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		for _, d := range []struct {
			tags int
			took time.Duration
		}{{10, 10 * time.Second}, {100, 40 * time.Second}} {
			r, err := e.store.Add(ctx, enqueuer.NewRepository{Path: fmt.Sprintf("done/%d", d.tags), TagCount: d.tags, CreatedAt: epoch})
			require.NoError(t, err)
			start := now.Add(-time.Hour)
			for _, s := range []struct {
				ev enqueuer.Event
				at time.Time
			}{{enqueuer.EventStartPreImport, start}, {enqueuer.EventFinishPreImport, start.Add(d.took / 2)},
				{enqueuer.EventStartImport, start.Add(d.took / 2)}, {enqueuer.EventFinishImport, start.Add(d.took)}} {
				r, err = e.store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: s.ev, At: s.at})
				require.NoError(t, err)
			}
		}
		_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "wait/big", TagCount: 1000, CreatedAt: epoch})
		require.NoError(t, err)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), Locker: locker, Clock: func() time.Time { return now }})
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.InDelta(t, 160, f.Remaining.Seconds(), 0.001)
	})
}
