package harness

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkSeedScaleImport runs the full scenario once: the
// seed-shaped registry (258 repositories, ~136,000 tagged blobs), 100 ms per
// object operation, 1 % 503s, imported through the enqueuer and verified,
// with a one-at-a-time sample of the seed's importer in the same run as
// the baseline. It prints the report and the `ferry-bench:` lines. The
// first run generates the workload (a few minutes on a slow disk); later
// runs find it in the cache. The import itself takes several minutes, so
// b.N is 1.
func BenchmarkSeedScaleImport(b *testing.B) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	w, err := Prepare(ctx, SeedSpec(1), WorkloadOptions{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("workload %s (cached: %v, %s)", w.Dir, w.Cached, w.Took.Round(time.Second))
	b.ResetTimer()
	for range b.N {
		res, err := Run(ctx, w, Options{
			BaselineRepositories: 2,
			Progress:             os.Stdout,
			ProgressInterval:     10 * time.Second,
			Logger:               logger,
		})
		if res != nil {
			res.WriteReport(os.Stdout)
			for _, l := range res.BenchLines() {
				fmt.Println(l)
			}
			b.ReportMetric(res.Wall.Seconds(), "wall-s")
			b.ReportMetric(res.BlobsPerSecond, "blobs/s")
			b.ReportMetric(res.Speedup(), "speedup")
			if worst, ok := res.MaxETAError(); ok {
				b.ReportMetric(worst*100, "max-eta-err-%")
			}
			b.ReportMetric(float64(res.PeakRSS)/(1<<20), "peak-rss-MiB")
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForecastReplay makes enqueuer.Forecast again over the recorded
// seed-scale runs in testdata/timelines (see its README) and prints its
// error at 10/50/90% of repositories and of blob transfers against the
// issue's ±15%, and the mean |error| over every sample with at least
// ReplayMinLeft left: from measured durations only over every run, and,
// over the runs that recorded it, with the registry's progress of the
// running imports (ForecastOptions.RegistryProgress) beside the same runs
// without it. A replay is pure computation on recorded data, so the
// figures change only with the forecast.
func BenchmarkForecastReplay(b *testing.B) {
	files, err := filepath.Glob("testdata/timelines/*.json.gz")
	if err != nil || len(files) == 0 {
		b.Fatalf("no recorded timelines: %v", err)
	}
	var (
		timelines []Timeline
		names     []string
	)
	for _, f := range files {
		tl, err := readTimeline(f)
		if err != nil {
			b.Fatal(err)
		}
		timelines = append(timelines, tl)
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json.gz"))
	}
	model := make([]Replay, len(timelines))
	progress := map[int]Replay{}
	b.ResetTimer()
	for range b.N {
		for i, tl := range timelines {
			if model[i], err = ReplayForecast(context.Background(), tl, []float64{0.10, 0.50, 0.90}, false); err != nil {
				b.Fatal(err)
			}
			if tl.HasProgress() {
				if progress[i], err = ReplayForecast(context.Background(), tl, []float64{0.10, 0.50, 0.90}, true); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	all := replaySummary{}
	for i, r := range model {
		all.add(fmt.Sprintf("scale-forecast-replay-%s", names[i]), r)
	}
	fmt.Printf("ferry-bench: scale-forecast-replay ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1 runs=%d mean=%.1f%% unknown_points=%d (enqueuer.Forecast from measured durations, replayed over recorded seed-scale runs: max |error| at 10/50/90%% of repositories and blob transfers against ±15%%; unknown: no import had finished)\n",
		all.worst*100, TargetETAError*100, all.worst/TargetETAError, all.runs, all.mean()*100, all.unknown)
	if len(progress) == 0 {
		return
	}
	with, without := replaySummary{}, replaySummary{quiet: true}
	for i := range timelines {
		if r, ok := progress[i]; ok {
			with.add(fmt.Sprintf("scale-forecast-replay-progress-%s", names[i]), r)
			without.add("", model[i])
		}
	}
	fmt.Printf("ferry-bench: scale-forecast-replay-progress ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1 runs=%d mean=%.1f%% unknown_points=%d without_progress=%.1f%%/mean=%.1f%% (enqueuer.Forecast with the registry's progress of running imports, over the runs that recorded it, against ±15%%; the same runs from measured durations only after the slash)\n",
		with.worst*100, TargetETAError*100, with.worst/TargetETAError, with.runs, with.mean()*100, with.unknown, without.worst*100, without.mean()*100)
}

// replaySummary accumulates replays' errors and prints each run's line.
type replaySummary struct {
	quiet         bool
	worst, sum    float64
	runs, unknown int
}

func (s *replaySummary) mean() float64 { return s.sum / float64(max(s.runs, 1)) }

func (s *replaySummary) add(name string, r Replay) {
	runWorst, points := 0.0, ""
	for _, set := range []struct {
		name   string
		points []ETAPoint
	}{{"repos", r.ByRepositories}, {"blobs", r.ByBlobs}} {
		for _, p := range set.points {
			if p.Predicted < 0 {
				s.unknown++
				points += fmt.Sprintf(" %s%.0f=unknown", set.name, p.Progress*100)
				continue
			}
			runWorst = max(runWorst, math.Abs(p.Error))
			points += fmt.Sprintf(" %s%.0f=%+.1f%%", set.name, p.Progress*100, p.Error*100)
		}
	}
	if !s.quiet {
		fmt.Printf("ferry-bench: %s ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1 mean=%.1f%%%s\n",
			name, runWorst*100, TargetETAError*100, runWorst/TargetETAError, r.MeanError*100, points)
	}
	s.worst = max(s.worst, runWorst)
	s.sum += r.MeanError
	s.runs++
}

// readTimeline reads a gzipped Timeline.
func readTimeline(path string) (Timeline, error) {
	var tl Timeline
	f, err := os.Open(path)
	if err != nil {
		return tl, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return tl, fmt.Errorf("%s: %w", path, err)
	}
	if err := json.NewDecoder(zr).Decode(&tl); err != nil {
		return tl, fmt.Errorf("%s: %w", path, err)
	}
	return tl, nil
}
