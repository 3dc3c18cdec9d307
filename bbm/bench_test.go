package bbm_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/bbm"
)

const benchRows = 1_000_000

// BenchmarkBackfill compares, in one run, backfilling a new column of a
// 1,000,000-row table through Ferry (SyncWorker, adaptive batches aimed at
// 300ms jobs, no pause between batches) with the baseline of one UPDATE of
// the whole table. It reports both throughputs, their ratio and the longest
// transaction Ferry ran (sampled from pg_stat_activity, and as measured by
// the Observer). It also measures Ferry on default Options for a few
// seconds: those pause between batches on purpose, so their throughput is
// far lower (see the printed explanation).
func BenchmarkBackfill(b *testing.B) {
	pool := pgSetup(b)
	for b.Loop() {
		base := measure(b, pool, "bench_base", func(ctx context.Context) (int64, error) {
			tag, err := pool.Exec(ctx, `UPDATE bench_base SET filled = id * 2`)
			return tag.RowsAffected(), err
		})
		var longestJob atomic.Int64
		opts := bbm.Options{
			Logger: testLogger(),
			Adaptive: bbm.AdaptiveOptions{
				TargetJobDuration: 300 * time.Millisecond,
				MinBatchSize:      1000,
				MaxBatchSize:      500_000,
			},
			Observer: bbm.ObserverFuncs{OnJobFinished: func(_ context.Context, e bbm.JobEvent) {
				for {
					cur := longestJob.Load()
					if int64(e.Duration) <= cur || longestJob.CompareAndSwap(cur, int64(e.Duration)) {
						return
					}
				}
			}},
		}
		ferry := measure(b, pool, "bench_ferry", func(ctx context.Context) (int64, error) {
			return backfill(ctx, pool, "bench_ferry", 20_000, opts)
		})
		deflt := measure(b, pool, "bench_default", func(ctx context.Context) (int64, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return backfill(ctx, pool, "bench_default", 1000, bbm.Options{Logger: testLogger()})
		})
		ratio := ferry.rate / base.rate
		b.ReportMetric(ferry.rate, "ferry_rows/s")
		b.ReportMetric(base.rate, "baseline_rows/s")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(float64(ferry.longestTx.Milliseconds()), "longest_tx_ms")
		b.ReportMetric(deflt.rate, "default_rows/s")
		fmt.Printf("ferry-bench: bbm-backfill ferry=%.0f baseline=%.0f ratio=%.2f target>=0.7 longest_tx=%s (longest job %s; baseline's single tx %s)\n",
			ferry.rate, base.rate, ratio, ferry.longestTx.Round(time.Millisecond),
			time.Duration(longestJob.Load()).Round(time.Millisecond), base.longestTx.Round(time.Millisecond))
		fmt.Printf("ferry-bench: bbm-backfill-default-options ferry=%.0f rows/s over %s (batch 1000, 5 jobs per lock, ~1s random pause between batches: "+
			"the defaults throttle on purpose; %.0f%% of the baseline)\n", deflt.rate, deflt.elapsed.Round(time.Millisecond), 100*deflt.rate/base.rate)
	}
}

type result struct {
	rate      float64 // rows per second
	elapsed   time.Duration
	longestTx time.Duration // longest transaction seen in pg_stat_activity
}

// measure makes a fresh table, runs fn on it and samples the longest open
// transaction of the database meanwhile.
func measure(b *testing.B, pool *pgxpool.Pool, table string, fn func(context.Context) (int64, error)) result {
	b.Helper()
	ctx := context.Background()
	b.StopTimer()
	itemsTable(b, pool, table, benchRows)
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+table); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	var longest atomic.Int64
	sctx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(sctx)
	g.Go(func() error {
		for {
			var d time.Duration
			err := pool.QueryRow(gctx, `SELECT COALESCE(max(clock_timestamp() - xact_start), '0')
				FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
				AND xact_start IS NOT NULL`).Scan(&d)
			if gctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			if int64(d) > longest.Load() {
				longest.Store(int64(d))
			}
			select {
			case <-gctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	start := time.Now()
	rows, err := fn(ctx)
	elapsed := time.Since(start)
	stop()
	if gerr := g.Wait(); gerr != nil && !errors.Is(gerr, context.Canceled) {
		b.Fatal(gerr)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		b.Fatal(err)
	}
	b.StopTimer()
	if n := countWhere(b, pool, `SELECT count(*) FROM `+table+` WHERE filled IS NOT NULL AND filled <> id * 2`); n != 0 {
		b.Fatalf("%s: %d rows filled wrongly", table, n)
	}
	if _, err := pool.Exec(ctx, `DROP TABLE `+table); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	return result{rate: float64(rows) / elapsed.Seconds(), elapsed: elapsed, longestTx: time.Duration(longest.Load())}
}

// backfill registers a migration of table and runs a SyncWorker on it; it
// returns the rows filled (all of them unless ctx ends first).
func backfill(ctx context.Context, pool *pgxpool.Pool, table string, batch int, opts bbm.Options) (int64, error) {
	w := bbm.NewSyncWorker(pool, opts)
	if err := w.Register(fillWork("fill")); err != nil {
		return 0, err
	}
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: table, Table: table, Column: "id", Work: "fill", BatchSize: batch}); err != nil {
		return 0, err
	}
	runErr := w.Run(ctx)
	p, err := w.Admin().Status(context.WithoutCancel(ctx), table)
	if err != nil {
		return 0, err
	}
	if runErr == nil && p.Migration.Status != bbm.StatusFinished {
		return 0, fmt.Errorf("migration %s", p)
	}
	return p.Jobs.RowsDone, runErr
}
