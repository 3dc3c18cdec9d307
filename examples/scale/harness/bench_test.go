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
// ReplayMinLeft left. A replay is pure computation on recorded data, so
// the figures change only with the forecast.
func BenchmarkForecastReplay(b *testing.B) {
	files, err := filepath.Glob("testdata/timelines/*.json.gz")
	if err != nil || len(files) == 0 {
		b.Fatalf("no recorded timelines: %v", err)
	}
	var timelines []Timeline
	for _, f := range files {
		tl, err := readTimeline(f)
		if err != nil {
			b.Fatal(err)
		}
		timelines = append(timelines, tl)
	}
	replays := make([]Replay, len(timelines))
	b.ResetTimer()
	for range b.N {
		for i, tl := range timelines {
			if replays[i], err = ReplayForecast(context.Background(), tl, []float64{0.10, 0.50, 0.90}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	worst, mean, unknown := 0.0, 0.0, 0
	for i, r := range replays {
		runWorst, points := 0.0, ""
		for _, set := range []struct {
			name   string
			points []ETAPoint
		}{{"repos", r.ByRepositories}, {"blobs", r.ByBlobs}} {
			for _, p := range set.points {
				if p.Predicted < 0 {
					unknown++
					points += fmt.Sprintf(" %s%.0f=unknown", set.name, p.Progress*100)
					continue
				}
				runWorst = max(runWorst, math.Abs(p.Error))
				points += fmt.Sprintf(" %s%.0f=%+.1f%%", set.name, p.Progress*100, p.Error*100)
			}
		}
		fmt.Printf("ferry-bench: scale-forecast-replay-%s ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1 mean=%.1f%%%s\n",
			strings.TrimSuffix(filepath.Base(files[i]), ".json.gz"), runWorst*100, TargetETAError*100, runWorst/TargetETAError, r.MeanError*100, points)
		worst = max(worst, runWorst)
		mean += r.MeanError / float64(len(replays))
	}
	fmt.Printf("ferry-bench: scale-forecast-replay ferry=%.1f%% baseline=%.1f%% ratio=%.2f target<=1 runs=%d mean=%.1f%% unknown_points=%d (enqueuer.Forecast replayed over recorded seed-scale runs: max |error| at 10/50/90%% of repositories and blob transfers against ±15%%; unknown: no import had finished)\n",
		worst*100, TargetETAError*100, worst/TargetETAError, len(replays), mean*100, unknown)
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
