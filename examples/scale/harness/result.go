package harness

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// The seed's figures the run is compared with.
const (
	// SeedImportTime is the seed's single-region import of the whole
	// registry, one blob at a time.
	SeedImportTime = 588 * time.Minute // 9.8 h
	// TargetSpeedup is the goal over SeedImportTime.
	TargetSpeedup = 40
	// TargetWall is the bound for the seed-shaped run at 100 ms per
	// operation.
	TargetWall = 15 * time.Minute
	// TargetETAError bounds the ETA's relative error from 10 % progress on.
	TargetETAError = 0.15
)

// Rejection is a repository that was not imported, and why.
type Rejection struct {
	Path   string
	Tags   int
	Reason string
}

// Result is what Run measured and verified.
type Result struct {
	Spec    transfertest.Spec
	Options Options

	// Wall is from the start of discovery until every repository was
	// imported or skipped; Discovery is the listing part of it.
	Wall, Discovery time.Duration
	// EnqueuerRuns counts enqueuer.Enqueuer.Run calls.
	EnqueuerRuns int

	// Repositories were discovered; Imported reached import_done;
	// Rejected were skipped by the tag-count policy; Failed ended any
	// other way (skipped after too many retries, for instance).
	Repositories, Imported int
	Rejected, Failed       []Rejection
	// Manifests and Tags are what the sink holds at the end.
	Manifests, Tags int

	// BlobTransfers counts Transfer calls that succeeded (per repository);
	// BlobsCopied the distinct blobs actually copied, and BytesCopied
	// their size. BlobsPerSecond is BlobsCopied / Wall.
	BlobTransfers, BlobsCopied, BytesCopied int64
	BlobsPerSecond                          float64

	// PerRepository has the timeline of every imported repository, in the
	// order they started. A repository's time runs from the start of its
	// first pre-import to the end of its final import, enqueuer hand-offs
	// included.
	PerRepository []RepositoryTiming

	// BlobRetries counts blob transfer attempts beyond the first;
	// FaultsInjected the faults the buckets injected (503s, each of them
	// retried by someone, and slow reads); RepositoryRetries the enqueuer's retries of
	// aborted repositories.
	BlobRetries, FaultsInjected int64
	RepositoryRetries           int
	// PassFailures counts import passes that failed (and were aborted and
	// retried by the enqueuer); 0 means every fault was absorbed by the
	// retries of single operations.
	PassFailures int
	// SourceOps and DestinationOps count bucket operations.
	SourceOps, DestinationOps int64

	// PeakRSS is the process's peak resident set size in bytes.
	PeakRSS int64
	// Goroutines when Run started, at the peak (sampled every second) and
	// after Run released everything.
	GoroutinesStart, GoroutinesPeak, GoroutinesEnd int

	// ETA compares the ETA shown at 10 %, 50 % and 90 % of the blob
	// transfers with the time that was actually left.
	ETA []ETAPoint
	// Forecast is the same for the enqueuer's own forecast
	// (enqueuer.Enqueuer.Forecast: measured durations by tag-count bucket
	// and the capacity, no view inside an import), at the same shares of
	// blob transfers; ForecastByRepositories at shares of the
	// repositories imported or skipped.
	Forecast, ForecastByRepositories []ETAPoint

	// Timeline replays the forecast offline (ReplayForecast).
	Timeline Timeline

	Verification Verification
	// Baseline is the same-run sample of the seed's one-at-a-time
	// importer (nil unless Options.BaselineRepositories);
	// BaselineErr says why it failed, if it did.
	Baseline    *Baseline
	BaselineErr error
}

// Speedup returns SeedImportTime / Wall.
func (r *Result) Speedup() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(SeedImportTime) / float64(r.Wall)
}

// MaxETAError returns the largest relative ETA error from 10 % progress
// on, and false if no ETA was known at one of the points (or the run was
// too short to sample them).
func (r *Result) MaxETAError() (float64, bool) { return maxError(r.ETA) }

// MaxForecastError is MaxETAError for the enqueuer's forecast.
func (r *Result) MaxForecastError() (float64, bool) { return maxError(r.Forecast) }

func maxError(points []ETAPoint) (float64, bool) {
	if len(points) < 3 {
		return 0, false
	}
	var worst float64
	for _, p := range points {
		if p.Predicted < 0 {
			return 0, false
		}
		worst = max(worst, math.Abs(p.Error))
	}
	return worst, true
}

func maxNaiveETAError(points []ETAPoint) float64 {
	var worst float64
	for _, p := range points {
		worst = max(worst, math.Abs(p.NaiveError))
	}
	return worst
}

// durationStats returns min, max and mean.
func durationStats(ds []time.Duration) (lo, hi, avg time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	lo, hi = slices.Min(ds), slices.Max(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return lo, hi, sum / time.Duration(len(ds))
}

// Summary is a one-line account of the verification.
func (v Verification) Summary() string {
	s := fmt.Sprintf("%d of %d blobs verified by sha256 in %d objects; %d missing, %d unexpected, %d corrupt",
		v.Verified, v.Expected, v.Objects, v.Missing, v.Unexpected, v.Corrupt)
	if v.SinkDiff != "" {
		s += "; sink differs:\n" + summarizeDiff(v.SinkDiff, 10)
	} else {
		s += "; sink holds exactly the expected repositories, blobs, manifests and tags"
	}
	if len(v.Examples) > 0 {
		s += "\n  e.g. " + strings.Join(v.Examples, "\n  e.g. ")
	}
	return s
}

// WriteReport writes the final report.
func (r *Result) WriteReport(w io.Writer) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-20s %s\n", label, fmt.Sprintf(format, args...))
	}
	o := r.Options
	fmt.Fprintf(w, "Import of %d repositories, %s tags, %s manifests (latency %s per object operation, %.1f%% 503s, capacity %d, %d operations per repository)\n",
		r.Repositories, count(int64(r.Tags)), count(int64(r.Manifests)), o.Latency, o.FailureRate*100, o.Capacity, o.Concurrency)
	p("wall time", "%s (discovery %s), %d enqueuer runs", round(r.Wall), round(r.Discovery), r.EnqueuerRuns)
	p("blobs", "%s copied, %s transfers (%s already present), %s",
		count(r.BlobsCopied), count(r.BlobTransfers), count(r.BlobTransfers-r.BlobsCopied), transfer.FormatBytes(r.BytesCopied))
	p("rate", "%.0f blobs/s, %s/s", r.BlobsPerSecond, transfer.FormatBytes(int64(float64(r.BytesCopied)/max(r.Wall.Seconds(), 1e-9))))
	var total, pre, final []time.Duration
	for _, t := range r.PerRepository {
		total, pre, final = append(total, t.Took), append(pre, t.PreImport), append(final, t.FinalImport)
	}
	lo, hi, avg := durationStats(total)
	_, preMax, preAvg := durationStats(pre)
	_, finMax, finAvg := durationStats(final)
	p("per repository", "min %s, max %s, avg %s (pre-import avg %s max %s; final import avg %s max %s)",
		round(lo), round(hi), round(avg), round(preAvg), round(preMax), round(finAvg), round(finMax))
	p("imported", "%d of %d repositories", r.Imported, r.Repositories)
	p("rejected by policy", "%s", rejections(r.Rejected, fmt.Sprintf("more than %d tags", o.MaxTags)))
	p("failed", "%s", rejections(r.Failed, ""))
	absorbed := "all absorbed by retries of single operations"
	if r.PassFailures > 0 {
		absorbed = fmt.Sprintf("%d import passes failed and were retried by the enqueuer", r.PassFailures)
	}
	p("retries", "%s blob transfer retries; %s injected 503s, %s; %d repository retries",
		count(r.BlobRetries), count(r.FaultsInjected), absorbed, r.RepositoryRetries)
	p("storage operations", "source %s, destination %s", count(r.SourceOps), count(r.DestinationOps))
	p("peak RSS", "%s", transfer.FormatBytes(r.PeakRSS))
	p("goroutines", "%d at start, %d at peak, %d at end", r.GoroutinesStart, r.GoroutinesPeak, r.GoroutinesEnd)
	if len(r.ETA) == 0 {
		p("ETA", "not evaluated: the run was shorter than the one-second sampling")
	}
	for _, e := range r.ETA {
		if e.Predicted < 0 {
			p(fmt.Sprintf("ETA at %.0f%%", e.Progress*100), "unknown at %s (actual %s left)", round(e.At), round(e.Actual))
			continue
		}
		p(fmt.Sprintf("ETA at %.0f%%", e.Progress*100), "at %s predicted %s, actual %s: %+.1f%% (blob-rate estimate %s: %+.1f%%)",
			round(e.At), round(e.Predicted), round(e.Actual), e.Error*100, round(e.NaivePredicted), e.NaiveError*100)
	}
	for _, set := range []struct {
		name   string
		points []ETAPoint
	}{{"forecast at %.0f%% of blobs", r.Forecast}, {"forecast at %.0f%% of repositories", r.ForecastByRepositories}} {
		for _, e := range set.points {
			if e.Predicted < 0 {
				p(fmt.Sprintf(set.name, e.Progress*100), "unknown at %s (actual %s left)", round(e.At), round(e.Actual))
				continue
			}
			p(fmt.Sprintf(set.name, e.Progress*100), "at %s predicted %s, actual %s: %+.1f%%",
				round(e.At), round(e.Predicted), round(e.Actual), e.Error*100)
		}
	}
	status := "OK"
	if !r.Verification.OK() {
		status = "FAILED"
	}
	p("verification", "%s: %s", status, r.Verification.Summary())
	switch {
	case r.Baseline != nil:
		b := r.Baseline
		p("baseline", "one at a time: %s, %d blobs in %s (%s per blob); whole workload ≈ %s",
			plural(len(b.Repositories), "repository", "repositories"), b.Blobs, round(b.Took), b.PerBlob.Round(time.Millisecond), round(b.Estimated))
	case r.BaselineErr != nil:
		p("baseline", "failed: %v", r.BaselineErr)
	}
}

// forecastLine is the bench line of the enqueuer's forecast at points.
func (r *Result) forecastLine(name string, points []ETAPoint, progress string) string {
	line := name
	if worst, ok := maxError(points); ok {
		line += fmt.Sprintf(" ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1", worst*100, TargetETAError*100, worst/TargetETAError)
	} else {
		line += " ferry=unknown"
	}
	for _, e := range points {
		if e.Predicted < 0 {
			line += fmt.Sprintf(" at%.0f=unknown", e.Progress*100)
			continue
		}
		line += fmt.Sprintf(" at%.0f=%+.1f%%(%s/%s)", e.Progress*100, e.Error*100, round(e.Predicted), round(e.Actual))
	}
	return line + " (enqueuer.Forecast: durations by tag-count bucket and the capacity; max |error| at 10/50/90% of " + progress + " against ±15%)"
}

// BenchLines returns the `ferry-bench:` lines with the figures against
// their targets.
func (r *Result) BenchLines() []string {
	o := r.Options
	setting := fmt.Sprintf("latency=%s faults=%.1f%% capacity=%d concurrency=%d", o.Latency, o.FailureRate*100, o.Capacity, o.Concurrency)
	lines := []string{
		fmt.Sprintf("scale-import ferry=%s baseline=%s ratio=%.1f target>=%d blobs=%d blobs/s=%.0f repos=%d rejected=%d %s",
			hours(r.Wall), hours(SeedImportTime), r.Speedup(), TargetSpeedup, r.BlobsCopied, r.BlobsPerSecond, r.Imported, len(r.Rejected), setting),
		fmt.Sprintf("scale-import-wall ferry=%s baseline=%s ratio=%.2f target<=1 (seed-shaped run against the 15-minute bound)",
			round(r.Wall), TargetWall, r.Wall.Seconds()/TargetWall.Seconds()),
	}
	if b := r.Baseline; b != nil && r.Wall > 0 {
		lines = append(lines, fmt.Sprintf("scale-import-vs-sequential ferry=%s baseline=%s ratio=%.1f target>=%d (same run: one-at-a-time import of %s, %s per blob, extrapolated to %d blob transfers)",
			round(r.Wall), hours(b.Estimated), float64(b.Estimated)/float64(r.Wall), TargetSpeedup, plural(len(b.Repositories), "repository", "repositories"), b.PerBlob.Round(time.Millisecond), r.BlobTransfers))
	}
	etaLine := "scale-eta-error"
	if worst, ok := r.MaxETAError(); ok {
		etaLine += fmt.Sprintf(" ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1", worst*100, maxNaiveETAError(r.ETA)*100, worst/TargetETAError)
	} else {
		etaLine += " ferry=unknown"
	}
	for _, e := range r.ETA {
		if e.Predicted < 0 {
			etaLine += fmt.Sprintf(" at%.0f=unknown", e.Progress*100)
			continue
		}
		etaLine += fmt.Sprintf(" at%.0f=%+.1f%%(%s/%s)", e.Progress*100, e.Error*100, round(e.Predicted), round(e.Actual))
	}
	etaLine += " (max |ETA error| from 10% progress on against ±15%; baseline: elapsed×left/done)"
	lines = append(lines, etaLine, r.forecastLine("scale-forecast-error", r.Forecast, "blob transfers"),
		r.forecastLine("scale-forecast-error-by-repos", r.ForecastByRepositories, "repositories imported or skipped"),
		fmt.Sprintf("scale-peak-rss ferry=%.0fMiB (peak resident set of the whole run, workload description and in-memory sink included)", float64(r.PeakRSS)/(1<<20)),
		fmt.Sprintf("scale-goroutines ferry=%d baseline=%d ratio=%.2f target<=1 peak=%d (goroutines after the run vs before)",
			r.GoroutinesEnd, r.GoroutinesStart, float64(r.GoroutinesEnd)/float64(max(r.GoroutinesStart, 1)), r.GoroutinesPeak),
		fmt.Sprintf("scale-verified ferry=%d baseline=%d ratio=%.4f target>=1 missing=%d corrupt=%d unexpected=%d faults=%d (blobs verified by sha256 at the destination vs expected)",
			r.Verification.Verified, r.Verification.Expected, float64(r.Verification.Verified)/float64(max(r.Verification.Expected, 1)),
			r.Verification.Missing, r.Verification.Corrupt, r.Verification.Unexpected, r.FaultsInjected),
	)
	for i := range lines {
		lines[i] = "ferry-bench: " + lines[i]
	}
	return lines
}

// progressLine is the one-line progress display.
func progressLine(s Snapshot, final bool) string {
	eta := "ETA --"
	switch {
	case final:
		eta = "done"
	case s.ETAKnown:
		eta = "ETA " + round(s.ETA)
	}
	pct := 0.0
	if s.BlobsEstimated > 0 {
		pct = 100 * float64(s.BlobsDone) / float64(s.BlobsEstimated)
	}
	return fmt.Sprintf("[%8s] repositories %d/%d done, %d running, %d skipped | blobs %s/~%s (%.0f%%) %.0f/s | %s copied | %s retries | %s",
		round(s.Elapsed), s.Done, s.Repositories-s.Skipped, s.Running, s.Skipped,
		count(s.BlobsDone), count(s.BlobsEstimated), pct, s.BlobRate, transfer.FormatBytes(s.BytesCopied), count(s.Retries), eta)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

func hours(d time.Duration) string { return fmt.Sprintf("%.3gh", d.Hours()) }

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func rejections(rs []Rejection, reason string) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		why := r.Reason
		if reason != "" {
			why = reason
		}
		parts = append(parts, fmt.Sprintf("%s (%d tags: %s)", r.Path, r.Tags, why))
	}
	return fmt.Sprintf("%d: %s", len(rs), strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
