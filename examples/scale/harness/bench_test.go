package harness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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
