package enqueuer

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/storage"
)

// Defaults of ForecastOptions.
const (
	// DefaultForecastSamples is how many of the latest finished imports
	// the forecast measures.
	DefaultForecastSamples = 500
	// DefaultForecastWindow is how many waiting repositories the forecast
	// schedules one by one; the rest are spread over the capacity.
	DefaultForecastWindow = 10_000
	// ForecastProgressConcurrency bounds the registry's ImportStatus calls
	// of one Forecast with ForecastOptions.RegistryProgress.
	ForecastProgressConcurrency = 8
	// DefaultForecastProgressTimeout bounds the time one Forecast waits
	// for the registry's progress.
	DefaultForecastProgressTimeout = 2 * time.Second
)

// TagBuckets are the upper bounds of the forecast's tag-count buckets: a
// repository with t tags is in the first bucket whose bound is at least t
// (the last bucket has no bound).
var TagBuckets = []int{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000}

// ForecastOptions tunes Enqueuer.Forecast. The zero value is ready to use.
type ForecastOptions struct {
	// Now is the time the forecast is made at. Default: Config.Clock().
	Now time.Time
	// Capacity is the number of imports at once. Default: Config.Capacity.
	Capacity int
	// Samples is how many of the latest finished imports are measured.
	// Default DefaultForecastSamples.
	Samples int
	// Window is how many waiting repositories are scheduled one by one.
	// Default DefaultForecastWindow.
	Window int
	// RegistryProgress asks the registry (Config.Registry's ImportStatus,
	// at most ForecastProgressConcurrency at a time) how far each running
	// pre-import or import has got. Where it answers with
	// ImportStatus.Progress, the rest of that phase is estimated at its
	// own rate so far instead of from the bucket's measured mean: a large
	// repository, alone in its bucket, is no longer extrapolated from
	// smaller ones. A failed call, one that does not answer within
	// ProgressTimeout, or an answer without progress falls back on the
	// measured durations. The registry is asked when this or
	// Config.ForecastProgress is set (by default neither: a forecast
	// reads only the store).
	RegistryProgress bool
	// ProgressTimeout bounds the wait for the registry's answers: a
	// registry that is down or slow costs a forecast at most this, and
	// the imports it did not answer for fall back. Default
	// DefaultForecastProgressTimeout.
	ProgressTimeout time.Duration
}

// BucketForecast is one tag-count bucket of a Forecast.
type BucketForecast struct {
	// MinTags and MaxTags bound the bucket (MaxTags is math.MaxInt for the
	// last one).
	MinTags, MaxTags int
	// Finished counts the measured imports in the bucket; MeanTags and
	// MeanDuration are their means. A repository's duration is from the
	// start of its last pre-import to the end of its final import (the
	// time it held a unit of capacity); MeanPreImport is the part until
	// its pre-import ended, the rest is the final import and the wait
	// for its start.
	Finished      int
	MeanTags      float64
	MeanDuration  time.Duration
	MeanPreImport time.Duration
	// InProgress and Waiting count the repositories of the bucket that are
	// being imported and that wait (Waiting counts the scheduled window
	// only).
	InProgress, Waiting int
}

// Forecast is how long the repositories that are left will take.
type Forecast struct {
	// At is when the forecast was made; Capacity the capacity it assumed.
	At       time.Time
	Capacity int
	// Counts are the repositories by state.
	Counts Counts
	// Known is false until an import has finished: without a measured
	// duration of both phases there is nothing to forecast from, and
	// Remaining is 0. Unknown then says why, with what is measured so
	// far.
	Known   bool
	Unknown string
	// Remaining is the time until the last repository that can start now
	// (waiting and not deferred, or in progress) is imported; ETA is
	// At + Remaining. Deferred repositories are not counted: they wait
	// for their filter.
	Remaining time.Duration
	ETA       time.Time
	// Buckets are the tag-count buckets with finished, running or waiting
	// repositories, smallest first.
	Buckets []BucketForecast
	// Progressed counts the imports in progress whose current phase was
	// estimated from the registry's progress (ForecastOptions.RegistryProgress).
	Progressed int
}

// Forecast estimates how long the repositories that are left will take,
// from the measured durations of the latest finished imports by tag-count
// bucket and the capacity. A repository's expected duration is read off
// the buckets' measured means, interpolated by tag count (and extrapolated
// for repositories smaller than any finished one along a line fitted to
// the three smallest buckets, a fixed cost plus a cost per tag, and for
// larger ones along a power law fitted to the three largest), for each of
// its two phases: the pre-import, and the final import with the wait for
// its start. The means also count the imports in progress: a finished
// pre-import as measured, a phase still running as at least as long as it
// has run (see newDurationModel), so that a bucket's first and quickest
// finished imports do not stand for it alone. Imports in progress need what
// is left of their current phase (at least a tenth of the time it has
// run, once it overruns) and the phase after it; waiting repositories take
// the first free unit of capacity in the enqueuer's order (aborted first,
// then new ones in Config.Order), one by one for the first opts.Window of
// them, spread over the capacity for the rest. With opts.RegistryProgress
// the registry's progress of a running phase replaces its bucket's mean
// for what is left of it. It reads on the primary: Count, three short
// lists and the latest finished imports (and asks the registry once per
// running import with RegistryProgress).
func (e *Enqueuer) Forecast(ctx context.Context, opts ForecastOptions) (Forecast, error) {
	ctx = storage.UsePrimary(ctx)
	if opts.Now.IsZero() {
		opts.Now = e.cfg.Clock()
	}
	if opts.Capacity <= 0 {
		opts.Capacity = e.cfg.Capacity(ctx)
	}
	if opts.Samples <= 0 {
		opts.Samples = DefaultForecastSamples
	}
	if opts.Window <= 0 {
		opts.Window = DefaultForecastWindow
	}
	if opts.ProgressTimeout <= 0 {
		opts.ProgressTimeout = DefaultForecastProgressTimeout
	}
	f := Forecast{At: opts.Now, Capacity: opts.Capacity}
	var err error
	if f.Counts, err = e.cfg.Store.Count(ctx); err != nil {
		return f, fmt.Errorf("enqueuer: forecast: %w", err)
	}
	finished, err := e.cfg.Store.List(ctx, ListOptions{State: StateImportDone, Order: OrderNewest, Limit: opts.Samples})
	if err != nil {
		return f, fmt.Errorf("enqueuer: forecast: %w", err)
	}
	var running []Repository
	for _, s := range InProgressStates {
		rs, err := e.cfg.Store.List(ctx, ListOptions{State: s, Limit: max(f.Counts.States[s], 1)})
		if err != nil {
			return f, fmt.Errorf("enqueuer: forecast: %w", err)
		}
		running = append(running, rs...)
	}
	var waiting []Repository
	for _, s := range []State{StateImportAborted, StateDefault} {
		if len(waiting) >= opts.Window {
			break
		}
		rs, err := e.cfg.Store.List(ctx, ListOptions{State: s, Ready: true, Order: e.cfg.Order, Limit: opts.Window - len(waiting)})
		if err != nil {
			return f, fmt.Errorf("enqueuer: forecast: %w", err)
		}
		waiting = append(waiting, rs...)
	}
	beyond := max(f.Counts.Waiting()-len(waiting), 0)
	var progress map[int64]time.Duration
	if opts.RegistryProgress || e.cfg.ForecastProgress {
		if progress, err = e.registryProgress(ctx, running, opts.Now, opts.ProgressTimeout); err != nil {
			return f, fmt.Errorf("enqueuer: forecast: %w", err)
		}
		f.Progressed = len(progress)
	}
	m := newDurationModel(finished, running, progress, opts.Now)
	f.Buckets = m.buckets(running, waiting)
	if !m.known() {
		f.Unknown = m.unknownReason(running, opts.Now)
		return f, nil
	}
	f.Known = true
	f.Remaining = m.schedule(opts.Now, opts.Capacity, running, waiting, beyond)
	f.ETA = opts.Now.Add(f.Remaining)
	return f, nil
}

// registryProgress asks the registry how far each running phase has got
// and returns what that says is left of it at now, by repository ID,
// waiting at most timeout. Only an ended ctx fails it: a repository whose
// status cannot be read in time, or whose answer has no progress that
// tells what is left or is about another phase, is left out.
func (e *Enqueuer) registryProgress(ctx context.Context, running []Repository, now time.Time, timeout time.Duration) (map[int64]time.Duration, error) {
	var mu sync.Mutex
	out := map[int64]time.Duration{}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(ForecastProgressConcurrency)
	for _, r := range running {
		if r.State != StatePreImporting && r.State != StateImporting {
			continue // between the phases: nothing runs
		}
		g.Go(func() error {
			st, err := e.cfg.Registry.ImportStatus(wctx, r.Path)
			if err != nil || !registryRuns(r.State, st.Status) || st.Progress == nil {
				return nil
			}
			left, ok := st.Progress.Left(now)
			if !ok {
				return nil
			}
			mu.Lock()
			out[r.ID] = left
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// unknownReason says why m cannot forecast.
func (m *durationModel) unknownReason(running []Repository, now time.Time) string {
	if len(running) == 0 {
		return "no import has finished and none is in progress: nothing measured to forecast from"
	}
	var longest time.Duration
	for _, r := range running {
		if !r.PreImportingAt.IsZero() {
			longest = max(longest, now.Sub(r.PreImportingAt))
		}
	}
	pre := 0
	for _, b := range m.pre.ended {
		pre += b.n
	}
	return fmt.Sprintf("no import has finished both phases yet (%d in progress, the longest for %s; %d pre-imports finished): the time they have run is only a lower bound",
		len(running), longest.Round(time.Second), pre)
}

// bucketOf returns the index of the bucket of a repository with tags tags.
func bucketOf(tags int) int {
	i, _ := slices.BinarySearch(TagBuckets, tags)
	return i
}

// bucketBounds returns bucket i's tag bounds.
func bucketBounds(i int) (lo, hi int) {
	if i > 0 {
		lo = TagBuckets[i-1] + 1
	}
	if i < len(TagBuckets) {
		return lo, TagBuckets[i]
	}
	return lo, math.MaxInt
}

// durationModel is the measured mean durations of each bucket, by phase:
// the pre-import (from its start to its end) and the final phase (from
// there to the end of the final import, the wait for its start included).
// Together they are the time a repository holds a unit of capacity.
// Phases matter for the imports in progress: a final import that has run
// for a minute is nearly done, however long its pre-import took.
type durationModel struct {
	// pre.ended counts the pre-imports that ended (of finished imports
	// and of imports in progress), final.ended the finished imports.
	pre, final phaseModel
	// progress is what the registry's progress says is left of running
	// phases, by repository ID.
	progress map[int64]time.Duration
}

// phaseModel is one phase's measured mean duration of each bucket.
type phaseModel struct {
	sum   []bucketSum
	curve []point // the buckets' means, by tag count
	// ended and endedCurve are the same over the phases that ended
	// (finished imports, finished pre-imports) only.
	ended      []bucketSum
	endedCurve []point
}

type bucketSum struct {
	n          int
	tags, secs float64
}

func (b *bucketSum) add(tags int, d time.Duration) {
	b.n++
	b.tags += float64(tags)
	b.secs += d.Seconds()
}

// means are the means of the buckets with a measurement, by tag count.
func means(sums []bucketSum) []point {
	var c []point
	for _, b := range sums {
		if b.n > 0 {
			c = append(c, b.mean())
		}
	}
	return c
}

// mean is the bucket's mean tag count and duration; b.n must be above 0.
func (b bucketSum) mean() point {
	return point{tags: b.tags / float64(b.n), secs: b.secs / float64(b.n)}
}

// seconds is secs seconds as a Duration.
func seconds(secs float64) time.Duration { return time.Duration(secs * float64(time.Second)) }

type point struct{ tags, secs float64 }

// running is a phase still going on: it has run for ran so far, and
// left is what its progress says is left (negative: unknown).
type runningPhase struct {
	bucket, tags int
	ran, left    time.Duration
}

// newDurationModel measures the phases of the finished imports, and of
// the imports in progress at now: a pre-import that ended is measured
// like a finished one, and a phase still running counts in its bucket as
// at least as long as it has run (otherwise as long as the bucket's
// finished ones). Without them the first finished imports of a bucket,
// which are its quickest, would stand for the whole bucket while its
// slower ones still run.
func newDurationModel(finished, inProgress []Repository, progress map[int64]time.Duration, now time.Time) *durationModel {
	nb := len(TagBuckets) + 1
	m := &durationModel{
		pre:      phaseModel{sum: make([]bucketSum, nb), ended: make([]bucketSum, nb)},
		final:    phaseModel{sum: make([]bucketSum, nb), ended: make([]bucketSum, nb)},
		progress: progress,
	}
	for _, r := range finished {
		// A repository reconciled after an abort may carry the end of an
		// earlier attempt's pre-import: without both phases in order it
		// says nothing reliable.
		if r.PreImportingAt.IsZero() || r.PreImportDoneAt.Before(r.PreImportingAt) ||
			r.ImportDoneAt.Before(r.PreImportDoneAt) || !r.ImportDoneAt.After(r.PreImportingAt) {
			continue
		}
		b := bucketOf(r.TagCount)
		m.pre.addEnded(b, r.TagCount, r.PreImportDoneAt.Sub(r.PreImportingAt))
		m.final.addEnded(b, r.TagCount, r.ImportDoneAt.Sub(r.PreImportDoneAt))
	}
	var pre, final []runningPhase
	for _, r := range inProgress {
		b := bucketOf(r.TagCount)
		left := m.progressLeft(r)
		switch {
		case r.PreImportingAt.IsZero():
		case r.State == StatePreImporting:
			pre = append(pre, runningPhase{b, r.TagCount, now.Sub(r.PreImportingAt), left})
		case !r.PreImportDoneAt.Before(r.PreImportingAt):
			m.pre.addEnded(b, r.TagCount, r.PreImportDoneAt.Sub(r.PreImportingAt))
			final = append(final, runningPhase{b, r.TagCount, now.Sub(r.PreImportDoneAt), left})
		}
	}
	m.pre.addRunning(pre)
	m.final.addRunning(final)
	m.pre.fit()
	m.final.fit()
	return m
}

// addEnded counts a phase that ended.
func (p *phaseModel) addEnded(bucket, tags int, d time.Duration) {
	p.sum[bucket].add(tags, d)
	p.ended[bucket].add(tags, d)
}

// runningWeight bounds what one running phase adds to its bucket: at most
// that many times the measured mean, so that one stuck import (which the
// stale guard will cancel) does not stand for all the others.
const runningWeight = 2

// addRunning counts phases still running in the buckets that have
// measured ones, each as the time it has run plus what its progress says
// is left, or else as the longer of the time it has run and the bucket's
// measured mean; either at most runningWeight times that mean. A bucket
// measured only by running phases stays unmeasured: a lower bound alone is
// no estimate, and one projection is not a measurement.
func (p *phaseModel) addRunning(running []runningPhase) {
	means := make([]float64, len(p.sum))
	for i, b := range p.sum {
		if b.n > 0 {
			means[i] = b.mean().secs
		}
	}
	for _, r := range running {
		if means[r.bucket] <= 0 {
			continue
		}
		mean := seconds(means[r.bucket])
		if r.left >= 0 {
			p.sum[r.bucket].add(r.tags, min(r.ran+r.left, runningWeight*mean))
			continue
		}
		p.sum[r.bucket].add(r.tags, min(max(r.ran, mean), runningWeight*mean))
	}
}

func (p *phaseModel) fit() {
	p.curve, p.endedCurve = means(p.sum), means(p.ended)
}

// known reports whether both phases have been measured.
func (m *durationModel) known() bool { return len(m.pre.curve) > 0 && len(m.final.curve) > 0 }

// expected returns the expected duration of a repository with tags tags,
// both phases.
func (m *durationModel) expected(tags int) time.Duration {
	return m.pre.expected(tags) + m.final.expected(tags)
}

// expected returns the phase's expected duration for a repository with
// tags tags: linear between the buckets' means; below the smallest, along
// a line fitted to the smallest buckets (extrapolateDown) once three have
// ended phases; else, and above the largest, along a power law fitted to the
// nearest buckets (extrapolate); in proportion to the tags when only one
// bucket is known.
func (p *phaseModel) expected(tags int) time.Duration {
	t, c := float64(tags), p.curve
	if len(c) == 0 {
		return 0
	}
	var secs float64
	switch i, _ := slices.BinarySearchFunc(c, t, func(p point, t float64) int {
		switch {
		case p.tags < t:
			return -1
		case p.tags > t:
			return 1
		}
		return 0
	}); {
	case len(c) == 1:
		secs = c[0].secs * t / max(c[0].tags, 1)
	case i == 0 && len(p.endedCurve) >= extrapolationBuckets:
		// Smaller than any finished one, with enough buckets to tell
		// the fixed cost.
		secs = extrapolateDown(c[0], p.endedCurve, t)
	case i == 0:
		secs = extrapolate(c, 0, t)
	case i < len(c):
		a, b := c[i-1], c[i]
		secs = a.secs + (b.secs-a.secs)*(t-a.tags)/(b.tags-a.tags)
	default:
		// Larger than any finished one.
		secs = extrapolate(c, len(c)-1, t)
	}
	return seconds(max(secs, 0))
}

// extrapolate extrapolates the curve c beyond its end near (its first or
// last point) to t tags along a power law, secs ∝ tags^k, fitted by least
// squares in log-log over the extrapolationBuckets buckets nearest that
// end, with k between 0 (a fixed cost) and 1 (in proportion to the tags),
// from the nearest bucket's mean. Measured imports grow more slowly than
// their tag counts at both ends (a fixed cost per repository at the small
// end; shared blobs and concurrent operations at the large end), so a
// straight line overshoots both: the many small repositories behind the
// measured ones, and the one large repository that decides the end. The
// slope through only the two nearest buckets follows the noise of one
// bucket (a single large repository's final import), which three damp.
func extrapolate(c []point, near int, t float64) float64 {
	lo, hi := near-extrapolationBuckets+1, near+extrapolationBuckets
	k := fitExponent(c[max(lo, 0):min(hi, len(c))])
	if c[near].tags <= 0 {
		return c[near].secs
	}
	return c[near].secs * math.Pow(t/c[near].tags, k)
}

// extrapolateDown extrapolates below the curve's first point (first) to t
// tags along a line from first, with the least-squares slope through the
// extrapolationBuckets smallest buckets of the phases that ended (ended
// has at least that many), between 0 and first's mean over its tags. An
// import costs a fixed part (its starts, notifications and first reads)
// plus a part per tag: the measured buckets of a seed-scale run lie on
// such a line from 19 to 5,856 tags. A power law through the nearest
// buckets leaves the fixed part out and makes the many small repositories
// behind the measured ones nearly free (-40% at 34 tags, from buckets of
// 300 to 1,500 tags). Running phases stay out of the slope: they count
// in the means as lower bounds or projections, and a line's fixed part,
// read ten times below its buckets, magnifies their bias. With fewer
// buckets the fixed part is one bucket's noise, and extrapolate's power
// law stands in.
func extrapolateDown(first point, ended []point, t float64) float64 {
	if first.tags <= 0 {
		return first.secs
	}
	slope, _ := leastSquares(ended[:extrapolationBuckets]) // 0 if they cannot tell
	slope = min(max(slope, 0), first.secs/first.tags)
	return first.secs - slope*(first.tags-t)
}

// leastSquares is the least-squares slope of secs on tags over c; ok is
// false when c cannot tell (fewer than two distinct tag counts).
func leastSquares(c []point) (slope float64, ok bool) {
	var sx, sy, sxx, sxy, n float64
	for _, p := range c {
		sx += p.tags
		sy += p.secs
		sxx += p.tags * p.tags
		sxy += p.tags * p.secs
		n++
	}
	d := n*sxx - sx*sx
	if d <= 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / d, true
}

// extrapolationBuckets is how many buckets at an end of the curve fit the
// exponent of extrapolate and the line of extrapolateDown.
const extrapolationBuckets = 3

// fitExponent is the least-squares slope of log(secs) on log(tags) over
// c, between 0 and 1; 1 when c cannot tell.
func fitExponent(c []point) float64 {
	var logs []point
	for _, p := range c {
		if p.tags > 0 && p.secs > 0 {
			logs = append(logs, point{tags: math.Log(p.tags), secs: math.Log(p.secs)})
		}
	}
	k, ok := leastSquares(logs)
	if !ok {
		return 1
	}
	return min(max(k, 0), 1)
}

// progressLeft is what the registry's progress says is left of r's
// current phase, or -1 if it does not say.
func (m *durationModel) progressLeft(r Repository) time.Duration {
	if left, ok := m.progress[r.ID]; ok {
		return left
	}
	return -1
}

// left returns how long r, in progress, still needs at now: what is left
// of its current phase (by the registry's progress if it said, else from
// the measured means), and the final phase after a pre-import.
func (m *durationModel) left(r Repository, now time.Time) time.Duration {
	rest := m.progressLeft(r) // of the current phase
	switch {
	case rest >= 0:
	case r.State == StatePreImporting:
		start := r.PreImportingAt
		if start.IsZero() {
			start = r.StateChangedAt
		}
		rest = remainder(m.pre.expected(r.TagCount), now.Sub(start))
	default:
		start := r.PreImportDoneAt
		if start.IsZero() || start.Before(r.PreImportingAt) {
			start = r.StateChangedAt
		}
		rest = remainder(m.final.expected(r.TagCount), now.Sub(start))
	}
	if r.State == StatePreImporting {
		rest += m.final.expected(r.TagCount)
	}
	return rest
}

// remainder is what is left of a phase expected to take expected that has
// run for ran: at least a tenth of ran once it overruns (nothing says how
// much longer; the longer it has run, the longer it may still run).
func remainder(expected, ran time.Duration) time.Duration {
	ran = max(ran, 0)
	return max(expected-ran, ran/10)
}

// schedule replays the enqueuer's schedule and returns when the last
// import ends, from now.
func (m *durationModel) schedule(now time.Time, capacity int, running, waiting []Repository, beyond int) time.Duration {
	capacity = max(capacity, 1)
	var free durationHeap // when each unit of capacity frees up, from now
	var end time.Duration
	for _, r := range running {
		d := m.left(r, now)
		free = append(free, d)
		end = max(end, d)
	}
	heap.Init(&free)
	var sum time.Duration
	for _, r := range waiting {
		at := time.Duration(0)
		if free.Len() >= capacity {
			at = heap.Pop(&free).(time.Duration)
		}
		d := m.expected(r.TagCount)
		sum += d
		heap.Push(&free, at+d)
		end = max(end, at+d)
	}
	if beyond == 0 || len(waiting) == 0 {
		return end
	}
	// The repositories beyond the window, each as long as the window's
	// mean, fill the units as water fills a basin.
	work := float64(sum) / float64(len(waiting)) * float64(beyond)
	units := []time.Duration(free)
	for len(units) < capacity {
		units = append(units, 0)
	}
	slices.Sort(units)
	level, filled := float64(units[0]), 1
	for work > 0 {
		next := math.Inf(1)
		if filled < len(units) {
			next = float64(units[filled])
		}
		if need := (next - level) * float64(filled); need < work {
			work -= need
			level = next
			filled++
			continue
		}
		level += work / float64(filled)
		work = 0
	}
	return max(end, time.Duration(level))
}

// buckets summarises the model and the repositories left by bucket.
func (m *durationModel) buckets(running, waiting []Repository) []BucketForecast {
	out := make([]BucketForecast, len(m.pre.sum))
	for i := range out {
		out[i].MinTags, out[i].MaxTags = bucketBounds(i)
		out[i].Finished = m.final.ended[i].n
		if pre, final := m.pre.sum[i], m.final.sum[i]; pre.n > 0 && final.n > 0 {
			preMean := pre.mean()
			out[i].MeanTags = preMean.tags
			out[i].MeanPreImport = seconds(preMean.secs)
			out[i].MeanDuration = out[i].MeanPreImport + seconds(final.mean().secs)
		}
	}
	for _, r := range running {
		out[bucketOf(r.TagCount)].InProgress++
	}
	for _, r := range waiting {
		out[bucketOf(r.TagCount)].Waiting++
	}
	return slices.DeleteFunc(out, func(b BucketForecast) bool { return b.Finished+b.InProgress+b.Waiting == 0 })
}

// durationHeap is a min-heap of durations.
type durationHeap []time.Duration

func (h durationHeap) Len() int           { return len(h) }
func (h durationHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h durationHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *durationHeap) Push(x any)        { *h = append(*h, x.(time.Duration)) }
func (h *durationHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
