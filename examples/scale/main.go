// Command scale imports a seed-shaped registry the way a registry
// migration runs: 258 repositories with a long tail of sizes, ~36,000 tags,
// ~28,000 manifests and ~136,000 blobs, through the enqueuer (capacity-
// limited pre-imports and final imports, notifications, retries) and the
// transfer importer, on buckets that add 100 ms to every object operation
// and fail 1 % of them with 503. It prints progress every few seconds and
// a final report, checks that every blob arrived intact, and prints the
// figures against the targets as `ferry-bench:` lines.
//
//	go run ./examples/scale                  # the full scenario, ~10 minutes
//	go run ./examples/scale -scale 50 -latency 5ms   # a quick look
//
// The workload is generated once and cached under the temp dir
// (ferry-scale-<hash>); the first run spends a few minutes writing it.
// The in-memory enqueuer store and lease are used unless -database-url
// names a PostgreSQL database (a scratch one: the repositories must not
// be in it yet).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/examples/scale/harness"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
)

type options struct {
	seed        uint64
	divisor     int
	latency     time.Duration
	failureRate float64
	slowReads   float64
	sinkLatency time.Duration
	capacity    int
	concurrency int
	maxTags     int
	baseline    int
	cacheDir    string
	databaseURL string
	progress    time.Duration
	keep        bool
	cpuProfile  string
	memProfile  string
	verbose     bool
	timeline    string
	replay      string
}

func main() {
	var o options
	flag.Uint64Var(&o.seed, "seed", 1, "workload seed")
	flag.IntVar(&o.divisor, "scale", 1, "import 1/N of the seed's images (1: the full seed)")
	flag.DurationVar(&o.latency, "latency", harness.DefaultLatency, "latency added to every object operation")
	flag.Float64Var(&o.failureRate, "failure-rate", harness.DefaultFailureRate, "share of object operations that fail with 503 (0: none)")
	flag.Float64Var(&o.slowReads, "slow-read-rate", 0, "share of reads that stall halfway for 10x the latency (0: none)")
	flag.DurationVar(&o.sinkLatency, "sink-latency", harness.DefaultSinkLatency, "round trip of every metadata call")
	flag.IntVar(&o.capacity, "capacity", harness.DefaultCapacity, "repositories imported at once (enqueuer capacity)")
	flag.IntVar(&o.concurrency, "concurrency", harness.DefaultConcurrency, "storage operations in flight per repository")
	flag.IntVar(&o.maxTags, "max-tags", 0, "skip repositories with more tags than this (0: no limit)")
	flag.IntVar(&o.baseline, "baseline", 2, "repositories imported one at a time alongside, as the same-run baseline (0: none)")
	flag.StringVar(&o.cacheDir, "cache-dir", "", "where generated workloads are cached (default: the temp dir)")
	flag.StringVar(&o.databaseURL, "database-url", "", "keep the enqueuer's repositories and lease in this PostgreSQL database")
	flag.DurationVar(&o.progress, "progress", harness.DefaultProgressInterval, "progress line interval")
	flag.BoolVar(&o.keep, "keep", false, "keep the destination directory")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the import to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile to this file every 30s during the import")
	flag.StringVar(&o.timeline, "timeline", "", "write the run's samples and the repositories' final records to this JSON file (for -replay)")
	flag.StringVar(&o.replay, "replay", "", "do not import: make the enqueuer's forecast again over a file written by -timeline and print its error")
	flag.BoolVar(&o.verbose, "v", false, "log warnings (retried failures, refused starts)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, o options) error {
	if o.replay != "" {
		return replay(ctx, out, o.replay, o.capacity)
	}
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	failureRate := o.failureRate
	if failureRate == 0 {
		failureRate = -1 // Options: negative means none
	}

	spec := harness.ScaledSpec(o.seed, o.divisor)
	fmt.Fprintf(out, "workload: seed %d, 1/%d of the seed's images (%d repositories, %d images) ...\n", o.seed, max(o.divisor, 1), spec.Repositories, spec.Images)
	w, err := harness.Prepare(ctx, spec, harness.WorkloadOptions{CacheDir: o.cacheDir, Logger: logger})
	if err != nil {
		return err
	}
	tags, manifests, blobs, bytes := w.Registry.Counts()
	how := "generated"
	if w.Cached {
		how = "cached"
	}
	fmt.Fprintf(out, "workload: %s in %s at %s: %d tags, %d manifest revisions, %d blobs, %.0f MiB\n",
		how, w.Took.Round(100*time.Millisecond), w.Dir, tags, manifests, blobs, float64(bytes)/(1<<20))

	opts := harness.Options{
		Latency: o.latency, FailureRate: failureRate, SlowReadRate: o.slowReads, FaultSeed: o.seed, SinkLatency: o.sinkLatency,
		Capacity: o.capacity, Concurrency: o.concurrency, MaxTags: o.maxTags,
		BaselineRepositories: o.baseline, KeepDestination: o.keep,
		Progress: out, ProgressInterval: o.progress, Logger: logger,
	}
	if o.databaseURL != "" {
		db, err := storage.Open(ctx, storage.Config{PrimaryURL: o.databaseURL, Logger: logger})
		if err != nil {
			return err
		}
		defer db.Close()
		if err := storage.Migrate(ctx, db, logger); err != nil {
			return err
		}
		if opts.Store, err = enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{Logger: logger}); err != nil {
			return err
		}
		opts.Locker = pglease.New(db, pglease.Options{})
		fmt.Fprintln(out, "enqueuer: PostgreSQL store and lease")
	} else {
		fmt.Fprintln(out, "enqueuer: in-memory store and lease")
	}

	stopProfiles, err := startProfiles(o.cpuProfile, o.memProfile)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "import: latency %s per object operation, %.1f%% 503s, capacity %d, %d operations per repository\n",
		o.latency, max(failureRate, 0)*100, opts.Capacity, opts.Concurrency)
	res, err := harness.Run(ctx, w, opts)
	stopProfiles()
	if errors.Is(err, enqueuer.ErrExists) {
		return fmt.Errorf("%w (use a database that does not hold this workload's repositories yet)", err)
	}
	if res != nil {
		fmt.Fprintln(out)
		res.WriteReport(out)
		fmt.Fprintln(out)
		for _, l := range res.BenchLines() {
			fmt.Fprintln(out, l)
		}
		if o.timeline != "" {
			if werr := writeTimeline(o.timeline, res); werr != nil {
				return errors.Join(err, werr)
			}
		}
	}
	return err
}

// startProfiles starts a CPU profile and a heap profile rewritten every
// 30 seconds (the last one is closest to the end of the import); the
// returned function stops both.
func startProfiles(cpu, mem string) (func(), error) {
	var stops []func()
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if mem != "" {
		done := make(chan struct{})
		var wg sync.WaitGroup
		write := func() {
			if f, err := os.Create(mem); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		wg.Go(func() {
			t := time.NewTicker(30 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					write()
				}
			}
		})
		stops = append(stops, func() { close(done); wg.Wait() })
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}, nil
}

// writeTimeline writes what replays the run's forecast (harness.Timeline).
func writeTimeline(path string, res *harness.Result) error {
	b, err := json.Marshal(res.Timeline)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	return nil
}

// replay makes the enqueuer's forecast again over a timeline written by
// -timeline and prints its error at 10/50/90% and on average; capacity
// stands in for a timeline that does not record one.
func replay(ctx context.Context, out io.Writer, path string, capacity int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	var tl harness.Timeline
	if err := json.Unmarshal(b, &tl); err != nil {
		return fmt.Errorf("replay: %s: %w", path, err)
	}
	if tl.Capacity <= 0 { // a timeline from before the field
		tl.Capacity = capacity
	}
	fmt.Fprintf(out, "replay of %s: %d repositories, wall %s, capacity %d\n", path, len(tl.Records), tl.Wall.Round(time.Second), tl.Capacity)
	if err := replayOnce(ctx, out, tl, false); err != nil {
		return err
	}
	if !tl.HasProgress() {
		fmt.Fprintln(out, "  (the timeline has no registry progress)")
		return nil
	}
	return replayOnce(ctx, out, tl, true)
}

// replayOnce replays tl's forecast, with or without the registry's
// progress, and prints its error.
func replayOnce(ctx context.Context, out io.Writer, tl harness.Timeline, registryProgress bool) error {
	r, err := harness.ReplayForecast(ctx, tl, []float64{0.10, 0.50, 0.90}, registryProgress)
	if err != nil {
		return err
	}
	if registryProgress {
		fmt.Fprintln(out, " with the registry's progress of running imports:")
	} else {
		fmt.Fprintln(out, " from measured durations only:")
	}
	for _, set := range []struct {
		name   string
		points []harness.ETAPoint
	}{{"blobs", r.ByBlobs}, {"repositories", r.ByRepositories}} {
		for _, p := range set.points {
			if p.Predicted < 0 {
				fmt.Fprintf(out, "  forecast at %2.0f%% of %s: unknown at %s (actual %s left)\n", p.Progress*100, set.name, p.At.Round(time.Second), p.Actual.Round(time.Second))
				continue
			}
			fmt.Fprintf(out, "  forecast at %2.0f%% of %s: at %s predicted %s, actual %s: %+.1f%%\n", p.Progress*100, set.name,
				p.At.Round(time.Second), p.Predicted.Round(100*time.Millisecond), p.Actual.Round(100*time.Millisecond), p.Error*100)
		}
	}
	fmt.Fprintf(out, "  mean |error| %.1f%% over %d samples with at least %s left\n", r.MeanError*100, r.Samples, harness.ReplayMinLeft)
	return nil
}
