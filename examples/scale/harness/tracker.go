package harness

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/transfer"
)

// priorBlobsPerTag is the blobs-per-tag ratio assumed until a repository
// has been pre-imported: the seed's 135,143 blobs over 36,729 tags.
const priorBlobsPerTag = 3.7

// rateWindow is how far back the blob rate on the progress line looks.
const rateWindow = 15 * time.Second

// minTagsForRate is how many tag reads a stage needs before its rate
// counts: shorter stages do not fill the reader's pipeline, and their tags
// arrive almost at once.
const minTagsForRate = 32

// blobRounds is how many times a repository's blobs must fill its
// importer's concurrency before its transfer rate counts, for the same
// reason.
const blobRounds = 3

// tracker follows an import as the registry runs it: passes started and
// finished, tags read, blobs transferred, and the ETA over time. It is
// safe for concurrent use.
type tracker struct {
	start    time.Time
	capacity int
	layout   transfer.Layout
	// minBlobs is the smallest number of blobs whose transfer rate counts.
	minBlobs int

	mu    sync.Mutex
	repos map[string]*repoTrack
	// Stage costs, measured as repositories go through the stages.
	startup     ewma
	tagsPerSec  ratioEWMA // tags read / seconds
	planPerBlob ratioEWMA // seconds / blobs
	blobsPerSec ratioEWMA // blobs / seconds
	prePerTag   ratioEWMA // seconds / tags
	handoff     ewma
	finalPerTag ratioEWMA // seconds / tags
	blobsSeen   int       // blobs of the pre-imported repositories
	tagsSeen    int       // and their tags

	blobsDone    int64 // blob transfers reported, copied or already present
	blobsCopied  int64
	bytesCopied  int64
	retries      int64 // blob transfer attempts beyond the first
	passFailures int
	samples      []etaSample
}

// repoTrack is one repository's timeline.
type repoTrack struct {
	tags  int
	order int
	stage stage
	since time.Time // when the current stage began
	// firstStart is the first pre-import; slotStart the current attempt's.
	firstStart, slotStart time.Time
	passStart             time.Time
	tagsRead              int
	firstTag, lastTag     time.Time
	blobsDone             int
	firstBlob, lastBlob   time.Time
	preEnd                time.Time
	preTook, finalTook    time.Duration
	end                   time.Time
	blobs                 int // distinct blobs of the repository (pre-import report)
	skipped               bool
	// The current pass's progress as the registry reports it: planned
	// units (blob transfers and tag writes, as the import server counts),
	// when the plan ended, and units done since.
	passPlanned   int
	passPlannedAt time.Time
	passDone      int
	// marks are the current stage's progress at recent snapshots, for its
	// recent rate.
	marks []mark
}

// mark is a stage's progress at one moment.
type mark struct {
	at   time.Time
	done int
}

// ownRateWindow is how far back a running repository's own rate looks:
// long enough to smooth out retries, short enough to follow a change of
// pace when other imports end.
const ownRateWindow = 10 * time.Second

// ownRate returns the rate of r's current stage over the last
// ownRateWindow (or since the stage began, if that is shorter), once the
// stage has done at least min units; else 0. It records a mark for later
// calls.
func (r *repoTrack) ownRate(now time.Time, done, min int, first, last time.Time) float64 {
	r.marks = append(r.marks, mark{at: now, done: done})
	i := 0
	for i < len(r.marks)-1 && now.Sub(r.marks[i+1].at) >= ownRateWindow {
		i++
	}
	r.marks = r.marks[i:]
	if done < min {
		return 0
	}
	if old := r.marks[0]; now.Sub(old.at) >= ownRateWindow/2 && done > old.done && old.at.After(first) {
		return float64(done-old.done) / now.Sub(old.at).Seconds()
	}
	if last.After(first) {
		return float64(done-1) / last.Sub(first).Seconds()
	}
	return 0
}

// etaSample is the ETA as it was shown at one moment.
type etaSample struct {
	elapsed   time.Duration
	blobsDone int64
	eta       time.Duration
	known     bool
	naive     time.Duration // elapsed × blobs left / blobs done
	settled   int           // repositories imported or skipped
	// forecast is the enqueuer's own forecast (enqueuer.Forecast).
	forecast      time.Duration
	forecastKnown bool
	// progress is the registry's progress of each running pass.
	progress map[string]enqueuer.ImportProgress
}

func newTracker(start time.Time, capacity, concurrency int, layout transfer.Layout) *tracker {
	return &tracker{start: start, capacity: capacity, layout: layout, minBlobs: blobRounds * concurrency, repos: map[string]*repoTrack{}}
}

// add registers a repository at its place in the enqueuer's queue.
func (t *tracker) add(name string, tags, order int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.repos[name] = &repoTrack{tags: tags, order: order}
}

func (t *tracker) skip(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.repos[name]; r != nil {
		r.skipped = true
	}
}

func (t *tracker) passStarted(name string, pass transfer.Pass, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.repos[name]
	if r == nil {
		return
	}
	r.passStart, r.since, r.marks = at, at, nil
	r.passPlanned, r.passPlannedAt, r.passDone = 0, time.Time{}, 0
	r.tagsRead, r.firstTag, r.lastTag = 0, time.Time{}, time.Time{}
	if pass == transfer.PreImport {
		if r.firstStart.IsZero() {
			r.firstStart = at
		}
		r.slotStart = at
		r.blobsDone, r.firstBlob, r.lastBlob = 0, time.Time{}, time.Time{}
		r.stage = stagePreTags
		if r.tags == 0 {
			r.stage = stagePrePlan
		}
		return
	}
	if !r.preEnd.IsZero() {
		t.handoff.add(at.Sub(r.preEnd).Seconds())
	}
	r.stage = stageFinalTags
	if r.tags == 0 {
		r.stage = stageFinalTail
	}
}

// observeKey is called for every operation on the source bucket; reads of
// a tag's current link count as that repository's tag reads.
func (t *tracker) observeKey(key string, at time.Time) {
	const marker, suffix = "/_manifests/tags/", "/current/link"
	prefix := t.layout.RepositoriesPrefix()
	if !strings.HasSuffix(key, suffix) || !strings.HasPrefix(key, prefix) {
		return
	}
	i := strings.Index(key, marker)
	if i < len(prefix) {
		return
	}
	name := key[len(prefix):i]
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.repos[name]
	if r == nil || (r.stage != stagePreTags && r.stage != stageFinalTags) {
		return
	}
	if r.tagsRead == 0 {
		r.firstTag = at
		t.startup.add(at.Sub(r.passStart).Seconds())
	}
	r.tagsRead++
	r.lastTag = at
	if r.tagsRead < r.tags {
		return
	}
	if r.tagsRead >= minTagsForRate {
		t.tagsPerSec.add(float64(r.tagsRead-1), r.lastTag.Sub(r.firstTag).Seconds())
	}
	r.since, r.marks = at, nil
	if r.stage == stagePreTags {
		r.stage = stagePrePlan
	} else {
		r.stage = stageFinalTail
	}
}

func (t *tracker) blobDone(name string, res transfer.Result, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.blobsDone++
	if !res.Skipped {
		t.blobsCopied++
		t.bytesCopied += res.Bytes
	}
	t.retries += int64(max(res.Attempts-1, 0))
	r := t.repos[name]
	if r == nil {
		return
	}
	if r.blobsDone == 0 {
		r.firstBlob = at
		est := t.blobsPerTagLocked() * float64(r.tags)
		if r.stage == stagePrePlan && est >= float64(t.minBlobs) {
			t.planPerBlob.add(at.Sub(r.since).Seconds(), est)
		}
		if r.stage == stagePrePlan || r.stage == stagePreTags {
			r.stage, r.since, r.marks = stagePreBlobs, at, nil
		}
	}
	r.blobsDone++
	r.passDone++
	r.lastBlob = at
}

// planned records the end of a pass's plan: units blob transfers and
// tag writes follow.
func (t *tracker) planned(name string, units int, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.repos[name]; r != nil && r.stage.passRunning() {
		r.passPlanned, r.passPlannedAt, r.passDone = units, at, 0
	}
}

// written counts a tag of name's pass written.
func (t *tracker) written(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.repos[name]; r != nil && r.stage.passRunning() {
		r.passDone++
	}
}

// progress is the running pass's progress of name as the registry reports
// it (enqueuer.ImportStatus.Progress), or nil before its plan ended.
func (t *tracker) progress(name string) *enqueuer.ImportProgress {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.repos[name]
	if r == nil {
		return nil
	}
	return r.progressLocked(time.Now())
}

// progressLocked is r's progress as of at; t.mu is held.
func (r *repoTrack) progressLocked(at time.Time) *enqueuer.ImportProgress {
	if !r.stage.passRunning() || r.passPlannedAt.IsZero() {
		return nil
	}
	return &enqueuer.ImportProgress{Done: int64(r.passDone), Total: int64(r.passPlanned), Since: r.passPlannedAt, At: at}
}

func (t *tracker) passFinished(name string, pass transfer.Pass, rep *transfer.Report, err error, took time.Duration, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.repos[name]
	if r == nil {
		return
	}
	if err != nil {
		// The enqueuer aborts it and retries it before any new one.
		t.passFailures++
		r.stage, r.order = stageWaiting, -1
		return
	}
	if pass == transfer.PreImport {
		r.preTook, r.preEnd = took, at
		r.stage, r.since = stageHandoff, at
		if rep != nil && len(rep.Repositories) == 1 {
			r.blobs = rep.Repositories[0].Blobs
			t.blobsSeen += r.blobs
			t.tagsSeen += r.tags
		}
		if r.blobsDone >= t.minBlobs {
			t.blobsPerSec.add(float64(r.blobsDone-1), r.lastBlob.Sub(r.firstBlob).Seconds())
		}
		if r.blobsDone > 0 && r.tags > 0 {
			t.prePerTag.add(at.Sub(r.lastBlob).Seconds(), float64(r.tags))
		}
		return
	}
	r.finalTook, r.end, r.stage = took, at, stageDone
	if !r.lastTag.IsZero() && r.tags > 0 {
		t.finalPerTag.add(at.Sub(r.lastTag).Seconds(), float64(r.tags))
	}
}

func (t *tracker) blobsPerTagLocked() float64 {
	if t.tagsSeen == 0 {
		return priorBlobsPerTag
	}
	return float64(t.blobsSeen) / float64(t.tagsSeen)
}

// Snapshot is the state of an import at one moment, as the progress line
// shows it.
type Snapshot struct {
	Elapsed time.Duration
	// Repositories: all, imported, being imported, skipped by policy.
	Repositories, Done, Running, Skipped int
	// BlobsDone counts blob transfers (copied or found present);
	// BlobsEstimated is the expected total, from tag counts.
	BlobsDone, BlobsEstimated int64
	BlobsCopied, BytesCopied  int64
	// BlobRate is blob transfers per second over the last few seconds.
	BlobRate float64
	Retries  int64
	// ETA is the predicted time left; ETAKnown is false until every stage
	// of an import has been seen often enough to predict.
	ETA      time.Duration
	ETAKnown bool
}

// snapshot computes the figures and records an ETA sample.
func (t *tracker) snapshot(now time.Time) Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Snapshot{Elapsed: now.Sub(t.start), BlobsDone: t.blobsDone, BlobsCopied: t.blobsCopied,
		BytesCopied: t.bytesCopied, Retries: t.retries, Repositories: len(t.repos)}

	rt := rates{
		startup:     seconds(t.startup.get()),
		tagsPerSec:  t.tagsPerSec.get(),
		planPerBlob: seconds(t.planPerBlob.get()),
		blobsPerSec: t.blobsPerSec.get(),
		prePerTag:   seconds(t.prePerTag.get()),
		handoff:     seconds(t.handoff.get()),
		finalPerTag: seconds(t.finalPerTag.get()),
		blobsPerTag: t.blobsPerTagLocked(),
	}
	// Until a stage has been completed by a large enough repository, the
	// running ones' rates stand in.
	var tagRates, blobRates []float64
	var unfinished []etaRepo
	progress := map[string]enqueuer.ImportProgress{}
	for name, r := range t.repos {
		if p := r.progressLocked(now); p != nil {
			progress[name] = *p
		}
		switch {
		case r.skipped:
			s.Skipped++
			continue
		case r.stage == stageDone:
			s.Done++
			continue
		case r.stage != stageWaiting:
			s.Running++
		}
		e := etaRepo{tags: r.tags, order: r.order, stage: r.stage, since: r.since, blobs: r.blobs}
		switch r.stage {
		case stagePreTags, stageFinalTags:
			e.done = r.tagsRead
			if e.ownRate = r.ownRate(now, r.tagsRead, minTagsForRate, r.firstTag, r.lastTag); e.ownRate > 0 {
				tagRates = append(tagRates, e.ownRate)
			}
		case stagePreBlobs:
			e.done = r.blobsDone
			if e.ownRate = r.ownRate(now, r.blobsDone, t.minBlobs, r.firstBlob, r.lastBlob); e.ownRate > 0 {
				blobRates = append(blobRates, e.ownRate)
			}
		}
		unfinished = append(unfinished, e)
	}
	if rt.tagsPerSec == 0 {
		rt.tagsPerSec = mean(tagRates)
	}
	if rt.blobsPerSec == 0 {
		rt.blobsPerSec = mean(blobRates)
	}
	for _, r := range t.repos {
		switch {
		case r.skipped:
		case r.blobs > 0 || r.preTook > 0:
			s.BlobsEstimated += int64(r.blobs)
		default:
			s.BlobsEstimated += max(int64(rt.blobsPerTag*float64(r.tags)), int64(r.blobsDone))
		}
	}

	switch {
	case len(unfinished) == 0:
		s.ETA, s.ETAKnown = 0, true
	case rt.known():
		s.ETA, s.ETAKnown = estimateRemaining(now, rt, t.capacity, unfinished), true
	}
	sample := etaSample{elapsed: s.Elapsed, blobsDone: s.BlobsDone, eta: s.ETA, known: s.ETAKnown, settled: s.Done + s.Skipped, progress: progress}
	if s.BlobsDone > 0 && s.BlobsEstimated > s.BlobsDone {
		sample.naive = time.Duration(float64(s.Elapsed) * float64(s.BlobsEstimated-s.BlobsDone) / float64(s.BlobsDone))
	}
	t.samples = append(t.samples, sample)

	// The rate over the last window, from the samples.
	i, _ := slices.BinarySearchFunc(t.samples, s.Elapsed-rateWindow, func(e etaSample, d time.Duration) int {
		return int(e.elapsed - d)
	})
	if old := t.samples[i]; s.Elapsed > old.elapsed {
		s.BlobRate = float64(s.BlobsDone-old.blobsDone) / (s.Elapsed - old.elapsed).Seconds()
	} else if s.Elapsed > 0 {
		s.BlobRate = float64(s.BlobsDone) / s.Elapsed.Seconds()
	}
	return s
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// ratioEWMA is the ratio of two exponentially decayed sums: a rate over
// recent samples in which each sample weighs by its size.
type ratioEWMA struct{ num, den float64 }

// ratioDecay is how much older samples fade with each new one.
const ratioDecay = 0.1

func (r *ratioEWMA) add(num, den float64) {
	if den <= 0 {
		return
	}
	r.num = r.num*(1-ratioDecay) + num
	r.den = r.den*(1-ratioDecay) + den
}

func (r *ratioEWMA) get() float64 {
	if r.den <= 0 {
		return 0
	}
	return r.num / r.den
}

// ETAPoint compares the ETA shown when a share of the work was done with
// the time that was actually left.
type ETAPoint struct {
	// Progress is the share of blob transfers done (of the final total).
	Progress float64
	// At is when that share was reached, from the start.
	At time.Duration
	// Predicted is the ETA shown then (-1 if none was shown yet); Actual
	// the time that was left.
	Predicted, Actual time.Duration
	// Error is (Predicted - Actual) / Actual.
	Error float64
	// NaivePredicted and NaiveError are the same for the simple estimate
	// "elapsed × blobs left / blobs done", for comparison.
	NaivePredicted time.Duration
	NaiveError     float64
}

// etaPoints evaluates the recorded samples against the real end, at each
// share of blob transfers in shares; a share reached only when the run
// ended has no point.
func (t *tracker) etaPoints(end time.Duration, shares []float64) []ETAPoint {
	return t.points(end, shares, t.byBlobs, func(s etaSample) (time.Duration, bool) { return s.eta, s.known })
}

// forecastPoints evaluates the enqueuer's forecast (enqueuer.Forecast) at
// each share of blob transfers, as etaPoints does the ETA.
func (t *tracker) forecastPoints(end time.Duration, shares []float64) []ETAPoint {
	return t.points(end, shares, t.byBlobs, func(s etaSample) (time.Duration, bool) { return s.forecast, s.forecastKnown })
}

// forecastPointsByRepositories is forecastPoints at shares of the
// repositories imported or skipped: the progress the enqueuer itself sees.
func (t *tracker) forecastPointsByRepositories(end time.Duration, shares []float64) []ETAPoint {
	return t.points(end, shares, t.byRepositories, func(s etaSample) (time.Duration, bool) { return s.forecast, s.forecastKnown })
}

// byBlobs and byRepositories are a sample's progress; t.mu is held.
func (t *tracker) byBlobs(s etaSample) float64 {
	return float64(s.blobsDone) / float64(max(t.blobsDone, 1))
}

func (t *tracker) byRepositories(s etaSample) float64 {
	return float64(s.settled) / float64(max(len(t.repos), 1))
}

// points evaluates the samples' estimates (pick) against the real end at
// each share of progress.
func (t *tracker) points(end time.Duration, shares []float64, progress func(etaSample) float64, pick func(etaSample) (time.Duration, bool)) []ETAPoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ETAPoint
	for _, share := range shares {
		for _, s := range t.samples {
			if s.elapsed >= end {
				break // the run was shorter than the sampling interval
			}
			if progress(s) < share {
				continue
			}
			p := ETAPoint{Progress: share, At: s.elapsed, Actual: end - s.elapsed, Predicted: -1, NaivePredicted: s.naive}
			est, known := pick(s)
			if known {
				p.Predicted = est
			}
			if p.Actual > 0 {
				if known {
					p.Error = float64(p.Predicted-p.Actual) / float64(p.Actual)
				}
				p.NaiveError = float64(p.NaivePredicted-p.Actual) / float64(p.Actual)
			}
			out = append(out, p)
			break
		}
	}
	return out
}

// exportSamples returns the samples.
func (t *tracker) exportSamples() []Sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Sample, len(t.samples))
	for i, s := range t.samples {
		out[i] = Sample{Elapsed: s.elapsed, BlobsDone: s.blobsDone, Settled: s.settled, Forecast: s.forecast, ForecastKnown: s.forecastKnown,
			Progress: s.progress}
	}
	return out
}

// setForecast records the enqueuer's forecast with the latest sample.
func (t *tracker) setForecast(remaining time.Duration, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.samples); n > 0 {
		t.samples[n-1].forecast, t.samples[n-1].forecastKnown = remaining, known
	}
}

// failures returns how many import passes failed.
func (t *tracker) failures() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.passFailures
}

// RepositoryTiming is one imported repository's timeline.
type RepositoryTiming struct {
	Path  string
	Tags  int
	Blobs int
	// Started is when its first pre-import started, from the start of the
	// run; Took is from then to the end of its final import.
	Started, Took time.Duration
	// PreImport and FinalImport are the passes that succeeded.
	PreImport, FinalImport time.Duration
}

// timings returns the imported repositories' timelines, in the order they
// started.
func (t *tracker) timings() []RepositoryTiming {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []RepositoryTiming
	for name, r := range t.repos {
		if r.stage == stageDone {
			out = append(out, RepositoryTiming{
				Path: name, Tags: r.tags, Blobs: r.blobs,
				Started: r.firstStart.Sub(t.start), Took: r.end.Sub(r.firstStart),
				PreImport: r.preTook, FinalImport: r.finalTook,
			})
		}
	}
	slices.SortFunc(out, func(a, b RepositoryTiming) int { return int(a.Started - b.Started) })
	return out
}
