package enqueuer_test

import (
	"context"
	"fmt"
	"math"
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
			return addAt(t, e.store, path, tags, created)
		}
		finish := func(path string, tags int, took time.Duration) { finishOne(t, e.store, now, path, tags, took) }
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(2), Locker: locker, Clock: func() time.Time { return now }})

		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.False(t, f.Known, "nothing finished yet")
		require.Contains(t, f.Unknown, "nothing measured")

		finish("done/a", 10, 10*time.Second)
		finish("done/b", 100, 100*time.Second)
		stepAt(t, e.store, add("run/a", 100, epoch), enqueuer.EventStartPreImport, now.Add(-40*time.Second))
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
		// it has run, and counts in its bucket as twice the measured mean
		// (a pre-import mean of 75s instead of 50s); the capacity can be
		// given. The 1,000-tag one, started at once: 750s + 500s.
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{Now: now.Add(1000 * time.Second), Capacity: 100})
		require.NoError(t, err)
		require.Equal(t, 1250*time.Second, f.Remaining)
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
		add := func(path string) enqueuer.Repository { return addAt(t, e.store, path, 10, epoch) }
		step := func(r enqueuer.Repository, ev enqueuer.Event, ago time.Duration) enqueuer.Repository {
			return stepAt(t, e.store, r, ev, now.Add(-ago))
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
		// Its finished pre-import is measured with the finished import's.
		require.Equal(t, 70*time.Second, f.Buckets[0].MeanPreImport)
		require.Equal(t, 80*time.Second, f.Buckets[0].MeanDuration)
		require.Equal(t, 1, f.Buckets[0].Finished)

		// Overrunning its phase by 20s (30s in): a tenth of that, 3s.
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{Now: now.Add(26 * time.Second)})
		require.NoError(t, err)
		require.Equal(t, 3*time.Second, f.Remaining)

		// A pre-import 30s in: 40s of it (the mean of 40s, 100s and its
		// own 70s at least) and the 10s final phase.
		step(add("run/pre"), enqueuer.EventStartPreImport, 30*time.Second)
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, 50*time.Second, f.Remaining)
	})
}

// A repository larger than any finished one follows the power law through
// the two largest buckets: 10 tags in 10s and 100 in 40s make 1,000 tags
// 160s (4x per 10x), where a straight line would say 340s; one smaller
// than any finished follows it through the two smallest: 1 tag 2.5s,
// where the line would say 7s.
func TestForecastExtrapolatesAlongPowerLaw(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		finishAll(t, e, now, []finishedImport{{10, 10 * time.Second}, {100, 40 * time.Second}})
		_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "wait/big", TagCount: 1000, CreatedAt: epoch})
		require.NoError(t, err)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), Locker: locker, Clock: func() time.Time { return now }})
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.InDelta(t, 160, f.Remaining.Seconds(), 0.001)
		_, err = e.store.Add(ctx, enqueuer.NewRepository{Path: "wait/small", TagCount: 1, CreatedAt: epoch})
		require.NoError(t, err)
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.InDelta(t, 160+10*math.Pow(0.1, math.Log10(4)), f.Remaining.Seconds(), 0.001)
	})
}

// The exponent is fitted to the three nearest buckets, so that one noisy
// bucket does not set it: 10 tags in 10s, 100 in 40s and 1,000 in 100s
// fit t^0.5, so 10,000 tags take 100s × √10 = 316s (through the two
// largest alone, t^0.4: 250s; along a straight line: 700s).
func TestForecastFitsThreeBuckets(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		finishAll(t, e, now, []finishedImport{{10, 10 * time.Second}, {100, 40 * time.Second}, {1000, 100 * time.Second}})
		_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "wait/big", TagCount: 10_000, CreatedAt: epoch})
		require.NoError(t, err)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), Locker: locker, Clock: func() time.Time { return now }})
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.InDelta(t, 100*math.Sqrt(10), f.Remaining.Seconds(), 0.01)
	})
}

type finishedImport struct {
	tags int
	took time.Duration
}

// finishAll adds one finished import per entry, started an hour before
// now, half of it pre-import.
func finishAll(t *testing.T, e *env, now time.Time, done []finishedImport) {
	t.Helper()
	for _, d := range done {
		finishOne(t, e.store, now, fmt.Sprintf("done/%d", d.tags), d.tags, d.took)
	}
}

// finishOne adds one finished import of path, started an hour before now,
// half of it pre-import.
func finishOne(t testing.TB, s enqueuer.Store, now time.Time, path string, tags int, took time.Duration) {
	t.Helper()
	r := addAt(t, s, path, tags, epoch)
	start := now.Add(-time.Hour)
	r = stepAt(t, s, r, enqueuer.EventStartPreImport, start)
	r = stepAt(t, s, r, enqueuer.EventFinishPreImport, start.Add(took/2))
	r = stepAt(t, s, r, enqueuer.EventStartImport, start.Add(took/2))
	stepAt(t, s, r, enqueuer.EventFinishImport, start.Add(took))
}

// addAt adds a waiting repository of tags tags, created at created.
func addAt(t testing.TB, s enqueuer.Store, path string, tags int, created time.Time) enqueuer.Repository {
	t.Helper()
	r, err := s.Add(context.Background(), enqueuer.NewRepository{Path: path, TagCount: tags, CreatedAt: created})
	require.NoError(t, err)
	return r
}

// stepAt applies ev to r at at.
func stepAt(t testing.TB, s enqueuer.Store, r enqueuer.Repository, ev enqueuer.Event, at time.Time) enqueuer.Repository {
	t.Helper()
	out, err := s.Transition(context.Background(), enqueuer.Change{ID: r.ID, From: r.State, Event: ev, At: at})
	require.NoError(t, err)
	return out
}

// A bucket's first finished imports are its quickest: the ones still
// running count as at least as long as they have run (at most twice the
// measured mean), and the forecast says why it cannot be made before
// both phases of an import are measured.
func TestForecastCountsRunningImports(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		step := func(r enqueuer.Repository, ev enqueuer.Event, ago time.Duration) enqueuer.Repository {
			return stepAt(t, e.store, r, ev, now.Add(-ago))
		}
		add := func(path string) enqueuer.Repository { return addAt(t, e.store, path, 10, epoch) }
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Locker: locker, Clock: func() time.Time { return now }})
		// Pre-imports running for 12s, 15s and 50s; one finished in 10s
		// and its final import is 1s in.
		for i, ran := range []time.Duration{12 * time.Second, 15 * time.Second, 50 * time.Second} {
			step(add(fmt.Sprintf("run/r%d", i)), enqueuer.EventStartPreImport, ran)
		}
		r := step(add("run/final"), enqueuer.EventStartPreImport, 11*time.Second)
		r = step(r, enqueuer.EventFinishPreImport, time.Second)
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.False(t, f.Known)
		require.Equal(t, "no import has finished both phases yet (4 in progress, the longest for 50s; 1 pre-imports finished): the time they have run is only a lower bound", f.Unknown)

		// Finished: one import, pre-import 10s and final phase 2s.
		done := step(add("done/a"), enqueuer.EventStartPreImport, time.Hour)
		done = step(done, enqueuer.EventFinishPreImport, time.Hour-10*time.Second)
		done = step(done, enqueuer.EventStartImport, time.Hour-10*time.Second)
		step(done, enqueuer.EventFinishImport, time.Hour-12*time.Second)
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.True(t, f.Known)
		require.Empty(t, f.Unknown)
		// Pre-imports: 10s and 10s measured, 12s, 15s and 20s (50s, at
		// most twice the mean) running: a mean of 13.4s. Final phase: 2s,
		// and the one 1s in counts as 2s.
		require.Equal(t, 13400*time.Millisecond, f.Buckets[0].MeanPreImport)
		require.Equal(t, 15400*time.Millisecond, f.Buckets[0].MeanDuration)
		require.Equal(t, 1, f.Buckets[0].Finished)
		require.Equal(t, 4, f.Buckets[0].InProgress)
	})
}

// With RegistryProgress a running phase's rest comes from the registry's
// progress at its own rate; a failed status call, an answer about another
// phase or one without progress falls back on the measured means.
func TestForecastRegistryProgress(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		// Measured: a 25s pre-import and a 25s final phase.
		finishOne(t, e.store, now, "done/a", 10, 50*time.Second)
		r := addAt(t, e.store, "run/pre", 10, epoch)
		stepAt(t, e.store, r, enqueuer.EventStartPreImport, now.Add(-30*time.Second))
		e.reg.SetStatus("run/pre", enqueuer.StatusPreImportInProgress)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker, Clock: func() time.Time { return now }})
		opts := enqueuer.ForecastOptions{RegistryProgress: true}

		// No progress reported: overrunning the 27.5s pre-import mean
		// (25s and its own 30s), a tenth of the 30s it ran, then the 25s
		// final phase.
		base, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, 28*time.Second, base.Remaining)
		f, err := enq.Forecast(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, base.Remaining, f.Remaining)
		require.Zero(t, f.Progressed)

		// A quarter done in the 20s since its plan: 60s more, then the
		// final phase (25s); in its bucket it counts as 30s + 60s, at most
		// twice the measured mean (50s).
		e.reg.SetProgress("run/pre", &enqueuer.ImportProgress{Done: 1, Total: 4, Since: now.Add(-20 * time.Second)})
		f, err = enq.Forecast(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, 1, f.Progressed)
		require.Equal(t, 85*time.Second, f.Remaining)
		require.Equal(t, (25+50)*time.Second/2, f.Buckets[0].MeanPreImport)
		// Without the option the registry is not asked.
		calls := e.reg.Calls(enqueuertest.OpStatus, "run/pre")
		f, err = enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, base.Remaining, f.Remaining)
		require.Equal(t, calls, e.reg.Calls(enqueuertest.OpStatus, "run/pre"))

		// Config.ForecastProgress asks by default.
		always := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker, Clock: func() time.Time { return now }, ForecastProgress: true})
		f, err = always.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.Equal(t, 85*time.Second, f.Remaining)

		// A failed call falls back.
		e.reg.Fail(enqueuertest.OpStatus, "run/pre", enqueuer.ErrRegistryUnavailable)
		f, err = enq.Forecast(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, base.Remaining, f.Remaining)
		require.Zero(t, f.Progressed)

		// Progress of another phase than the store's is not this one's.
		e.reg.SetStatus("run/pre", enqueuer.StatusImportInProgress)
		f, err = enq.Forecast(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, base.Remaining, f.Remaining)

		// Nothing done yet says nothing.
		e.reg.SetStatus("run/pre", enqueuer.StatusPreImportInProgress)
		e.reg.SetProgress("run/pre", &enqueuer.ImportProgress{Done: 0, Total: 4, Since: now.Add(-20 * time.Second)})
		f, err = enq.Forecast(ctx, opts)
		require.NoError(t, err)
		require.Equal(t, base.Remaining, f.Remaining)
		require.Zero(t, f.Progressed)

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = enq.Forecast(cctx, opts)
		require.ErrorIs(t, err, context.Canceled)

		// A registry that does not answer in time costs the forecast
		// ProgressTimeout, not the caller's deadline: it falls back.
		slow := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{MinLatency: time.Hour})
		slow.SetStatus("run/pre", enqueuer.StatusPreImportInProgress)
		slow.SetProgress("run/pre", &enqueuer.ImportProgress{Done: 1, Total: 4, Since: now.Add(-20 * time.Second)})
		stuck := e.enqueuer(t, enqueuer.Config{Capacity: capacity(5), Locker: locker, Clock: func() time.Time { return now }, Registry: slow})
		dctx, cancelDeadline := context.WithTimeout(ctx, time.Minute)
		defer cancelDeadline()
		f, err = stuck.Forecast(dctx, enqueuer.ForecastOptions{RegistryProgress: true, ProgressTimeout: 20 * time.Millisecond})
		require.NoError(t, err)
		require.Equal(t, base.Remaining, f.Remaining)
		require.Zero(t, f.Progressed)
	})
}

func TestImportProgressLeft(t *testing.T) {
	now := epoch
	for _, c := range []struct {
		p    enqueuer.ImportProgress
		left time.Duration
		ok   bool
	}{
		{enqueuer.ImportProgress{Done: 1, Total: 4, Since: now.Add(-20 * time.Second)}, 60 * time.Second, true},
		{enqueuer.ImportProgress{Done: 4, Total: 4, Since: now.Add(-20 * time.Second)}, 0, true},
		// The registry's own clock: 20s since its plan as of its answer,
		// whatever the coordinator's clock says.
		{enqueuer.ImportProgress{Done: 1, Total: 4, Since: now.Add(-time.Hour), At: now.Add(-time.Hour + 20*time.Second)}, 60 * time.Second, true},
		{enqueuer.ImportProgress{Done: 1, Total: 4, Since: now.Add(time.Hour), At: now.Add(time.Hour + 20*time.Second)}, 60 * time.Second, true},
		{enqueuer.ImportProgress{Done: 1, Total: 4, Since: now, At: now.Add(-time.Second)}, 0, false},
		{enqueuer.ImportProgress{Done: 1, Total: math.MaxInt64, Since: now.Add(-time.Hour)}, 100 * 365 * 24 * time.Hour, true},
		{enqueuer.ImportProgress{Done: 0, Total: 4, Since: now.Add(-20 * time.Second)}, 0, false},
		{enqueuer.ImportProgress{Done: 5, Total: 4, Since: now.Add(-20 * time.Second)}, 0, false},
		{enqueuer.ImportProgress{Done: 1, Total: 4}, 0, false},
		{enqueuer.ImportProgress{Done: 1, Total: 4, Since: now.Add(time.Second)}, 0, false},
	} {
		left, ok := c.p.Left(now)
		require.Equal(t, c.ok, ok, "%+v", c.p)
		require.Equal(t, c.left, left, "%+v", c.p)
	}
}

// Below the smallest finished bucket, once three are measured, a
// repository costs what the line through the three smallest says: a fixed
// part and a part per tag. 100, 200 and 400 tags in 12s, 22s and 42s
// (2s + 0.1s a tag) make 10 tags 3s, where the power law through them
// says 1.5s. The slope is at most the smallest bucket's mean over its tags
// (no negative fixed cost) and at least 0 (no repository costs more for
// having fewer tags).
func TestForecastExtrapolatesDownAlongLine(t *testing.T) {
	for _, c := range []struct {
		name string
		done []finishedImport
		want float64
	}{
		{"fixed cost and cost per tag", []finishedImport{{100, 12 * time.Second}, {200, 22 * time.Second}, {400, 42 * time.Second}}, 3},
		{"steeper than proportional", []finishedImport{{100, 10 * time.Second}, {200, 40 * time.Second}, {400, 100 * time.Second}}, 1},
		{"falling", []finishedImport{{100, 20 * time.Second}, {200, 10 * time.Second}, {400, 10 * time.Second}}, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
				ctx := context.Background()
				now := epoch.Add(48 * time.Hour)
				e := newEnv(t, store, enqueuertest.RegistryOptions{})
				finishAll(t, e, now, c.done)
				_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "wait/small", TagCount: 10, CreatedAt: epoch})
				require.NoError(t, err)
				enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), Locker: locker, Clock: func() time.Time { return now }})
				f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
				require.NoError(t, err)
				require.InDelta(t, c.want, f.Remaining.Seconds(), 0.001)
			})
		})
	}
}

// The line's slope comes from phases that ended: a running pre-import
// moves its bucket's mean (where the line starts), not the slope. 100,
// 200 and 400 tags in 12s, 22s and 42s (pre-imports 6s, 11s, 21s), and a
// 100-tag pre-import 11s in: its bucket's pre-import mean is 8.5s, it
// needs a tenth of its 11s and the 6s final phase (7.1s), then the
// 10-tag one takes 8.5s - 0.05s x 90 = 4s and the 1.5s final phase. With
// the slope through the running one's bucket (0.043s a tag) it would be
// 13.24s.
func TestForecastLineSlopeFromEndedPhases(t *testing.T) {
	eachStore(t, func(t *testing.T, store enqueuer.Store, locker lease.Locker) {
		ctx := context.Background()
		now := epoch.Add(48 * time.Hour)
		e := newEnv(t, store, enqueuertest.RegistryOptions{})
		finishAll(t, e, now, []finishedImport{{100, 12 * time.Second}, {200, 22 * time.Second}, {400, 42 * time.Second}})
		stepAt(t, e.store, addAt(t, e.store, "run/a", 100, epoch), enqueuer.EventStartPreImport, now.Add(-11*time.Second))
		addAt(t, e.store, "wait/small", 10, epoch)
		enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1), Locker: locker, Clock: func() time.Time { return now }})
		f, err := enq.Forecast(ctx, enqueuer.ForecastOptions{})
		require.NoError(t, err)
		require.InDelta(t, 12.6, f.Remaining.Seconds(), 0.001)
	})
}
