package enqueuer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

const (
	benchSlots    = 25
	benchLatency  = 100 * time.Millisecond
	benchTriggerN = 50 * time.Millisecond
)

// benchEnqueuer is an enqueuer over 2×benchSlots new repositories and a
// registry that takes benchLatency to accept each start.
func benchEnqueuer(b *testing.B, store enqueuer.Store, strategy enqueuer.Strategy) (*enqueuer.Enqueuer, enqueuer.Store) {
	b.Helper()
	if store == nil {
		store = enqueuertest.NewStore(enqueuertest.StoreOptions{})
	}
	addNew(b, store, "bench/image", 2*benchSlots)
	enq, err := enqueuer.New(enqueuer.Config{
		Store:    store,
		Registry: enqueuertest.NewRegistry(enqueuertest.RegistryOptions{MinLatency: benchLatency}),
		Locker:   leasetest.NewLocker(leasetest.Options{}),
		Capacity: capacity(benchSlots),
		Strategy: strategy,
		Logger:   quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	return enq, store
}

func checkFull(b *testing.B, store enqueuer.Store) {
	b.Helper()
	n, err := store.CountInProgress(context.Background())
	if err != nil || n != benchSlots {
		b.Fatalf("in progress %d (%v), want %d", n, err, benchSlots)
	}
}

// fillByRun fills the slots with one Run.
func fillByRun(b *testing.B, strategy enqueuer.Strategy, postgres bool) time.Duration {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		var store enqueuer.Store
		if postgres {
			store = newPostgresStore(b, openDB(b))
		}
		enq, store := benchEnqueuer(b, store, strategy)
		b.StartTimer()
		start := time.Now()
		if _, err := enq.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		checkFull(b, store)
		b.StartTimer()
	}
	return total / time.Duration(b.N)
}

// fillByTriggers is the old way: a job system triggers a Once run every
// benchTriggerN; overlapping triggers find the lease held and give up.
func fillByTriggers(b *testing.B) (time.Duration, int) {
	var total time.Duration
	triggers := 0
	for range b.N {
		b.StopTimer()
		enq, store := benchEnqueuer(b, nil, enqueuer.Once{})
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		tick := time.NewTicker(benchTriggerN)
		for fired := true; ; {
			if fired {
				triggers++
				wg.Go(func() {
					if _, err := enq.Run(context.Background()); err != nil && !errors.Is(err, lease.ErrHeld) {
						b.Error(err)
					}
				})
			}
			select {
			case <-tick.C:
				fired = true
			case <-time.After(2 * time.Millisecond):
				fired = false
			}
			if n, _ := store.CountInProgress(context.Background()); n >= benchSlots {
				break
			}
		}
		total += time.Since(start)
		tick.Stop()
		wg.Wait()
		b.StopTimer()
		checkFull(b, store)
		b.StartTimer()
	}
	return total / time.Duration(b.N), triggers / b.N
}

// BenchmarkFill25 measures the time to fill 25 import slots from empty with
// a registry that takes 100 ms to accept a start: Once triggered every
// 50 ms (the behaviour before loop mode), Loop, and ParallelLoop (in memory
// and on Postgres). The target: ParallelLoop within 2× one
// registry latency.
func BenchmarkFill25(b *testing.B) {
	var once, loop, parallel, parallelPG time.Duration
	var triggers int
	report := func(b *testing.B, d time.Duration) {
		b.ReportMetric(float64(d.Milliseconds()), "ms/fill")
		b.ReportMetric(float64(d)/float64(benchLatency), "latencies/fill")
	}
	b.Run("once-every-50ms", func(b *testing.B) {
		once, triggers = fillByTriggers(b)
		report(b, once)
		b.ReportMetric(float64(triggers), "triggers/fill")
	})
	b.Run("loop", func(b *testing.B) {
		loop = fillByRun(b, enqueuer.Loop{}, false)
		report(b, loop)
	})
	b.Run("parallel-loop", func(b *testing.B) {
		parallel = fillByRun(b, enqueuer.ParallelLoop{}, false)
		report(b, parallel)
	})
	b.Run("parallel-loop-postgres", func(b *testing.B) {
		parallelPG = fillByRun(b, enqueuer.ParallelLoop{}, true)
		report(b, parallelPG)
	})
	if once == 0 || loop == 0 || parallel == 0 {
		return // a sub-benchmark was filtered out
	}
	// Printed, not logged: a parent benchmark's log is not shown.
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Printf("ferry-bench: enqueuer_fill25_parallel_loop ferry=%.0fms baseline=%.0fms ratio=%.2f target<=2 baseline_is=one_registry_latency\n",
		ms(parallel), ms(benchLatency), float64(parallel)/float64(benchLatency))
	fmt.Printf("ferry-bench: enqueuer_fill25_vs_once ferry=%.0fms baseline=%.0fms ratio=%.3f loop=%.0fms parallel_postgres=%.0fms once_triggers=%d once_every=%s\n",
		ms(parallel), ms(once), float64(parallel)/float64(once), ms(loop), ms(parallelPG), triggers, benchTriggerN)
	fmt.Printf("ferry-bench: enqueuer_fill25_loop_vs_once ferry=%.0fms baseline=%.0fms ratio=%.2f\n",
		ms(loop), ms(once), float64(loop)/float64(once))
}
