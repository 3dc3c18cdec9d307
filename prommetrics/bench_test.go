//go:build unix

package prommetrics_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
)

// benchJobs is the number of jobs in one measured run of the job loop.
const benchJobs = 200

// BenchmarkObserverOverhead runs the bbm job loop (a SyncWorker on
// bbmtest's in-memory Store, so nothing but Ferry's own code is measured:
// find, claim, run, record) with the Prometheus observer and without one,
// in back-to-back rounds of the same run, and reports the median CPU time
// per job of each and the median of the rounds' ratios; a third arm adds
// a context-threading observer (observer-overhead-context, no target). CPU
// time (of the whole process, so garbage collection counts) rather than
// wall time, and medians of rounds, keep other load on a shared machine
// out of the figure. The target is
// that metrics cost at most 5% of a job's time even when the job does
// nothing; a job that touches a database costs milliseconds, which makes
// the observer's share far smaller still.
func BenchmarkObserverOverhead(b *testing.B) {
	m, err := prommetrics.New(prometheus.NewRegistry(), prommetrics.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// What a tracer adds on top, minus its own span work: the hooks'
	// context threading (a JobStart that returns a new context, found
	// again in JobEnd, through a MultiObserver).
	threaded := bbm.MultiObserver(m.BBM(), contextObserver())
	const rounds = 42 // every order of the three arms, seven times
	arms := []bbm.Observer{m.BBM(), nil, threaded}
	orders := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	jobLoop(b, m.BBM()) // warm up
	for b.Loop() {
		var hooked, plain, ctxed, ratios, ctxRatios []float64
		for i := range rounds {
			// Each arm runs first, second and third, after each of the
			// others, equally often: drift and order effects hit all alike.
			var ns [3]float64
			for _, a := range orders[i%len(orders)] {
				ns[a] = jobLoop(b, arms[a])
			}
			h, p, c := ns[0], ns[1], ns[2]
			hooked, plain, ctxed = append(hooked, h), append(plain, p), append(ctxed, c)
			ratios, ctxRatios = append(ratios, h/p), append(ctxRatios, c/p)
		}
		h, p, c, ratio, ctxRatio := median(hooked), median(plain), median(ctxed), median(ratios), median(ctxRatios)
		b.ReportMetric(h, "hooked_ns/job")
		b.ReportMetric(p, "unhooked_ns/job")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(ctxRatio, "context_ratio")
		fmt.Printf("ferry-bench: observer-overhead ferry=%.0fns/job baseline=%.0fns/job ratio=%.3f target<=1.05 (bbm SyncWorker on bbmtest, %d no-op jobs per round, medians of %d interleaved rounds; hooked = prommetrics)\n",
			h, p, ratio, benchJobs, rounds)
		fmt.Printf("ferry-bench: observer-overhead-context ferry=%.0fns/job baseline=%.0fns/job ratio=%.3f (same rounds; hooked = prommetrics plus a JobStart returning a new context that JobEnd reads back, through MultiObserver: a tracer's cost without its own span work)\n",
			c, p, ctxRatio)
	}
}

// contextObserver starts a pretend span in JobStart's context and finds it
// again in JobEnd's, as a tracer would.
func contextObserver() bbm.Observer {
	type spanKey struct{}
	return bbm.ObserverFuncs{
		OnJobStart: func(ctx context.Context, e bbm.JobStartEvent) context.Context {
			return context.WithValue(ctx, spanKey{}, e.JobID)
		},
		OnJobEnd: func(ctx context.Context, e bbm.JobEvent) {
			if ctx.Value(spanKey{}) != e.JobID {
				panic("JobEnd did not get JobStart's context")
			}
		},
	}
}

// jobLoop runs one migration of benchJobs no-op jobs and returns the CPU
// time per job in ns.
func jobLoop(b *testing.B, obs bbm.Observer) float64 {
	b.Helper()
	ctx := context.Background()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:   bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog: bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: benchJobs}),
		Logger:  quiet, Observer: obs, Adaptive: bbm.AdaptiveOptions{Off: true},
	})
	if err := w.Register(bbm.WorkFunc("noop", func(context.Context, storage.Querier, bbm.Batch) error { return nil })); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: "bench", Table: "items", Column: "id", Work: "noop", BatchSize: 1}); err != nil {
		b.Fatal(err)
	}
	runtime.GC() // each round starts from a clean heap
	start := cpuTime(b)
	if err := w.Run(ctx); err != nil {
		b.Fatal(err)
	}
	return float64((cpuTime(b) - start).Nanoseconds()) / benchJobs
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkObserverEvent is the cost of one job's events (JobStart and
// JobEnd) in the Prometheus observer, and in the empty default.
func BenchmarkObserverEvent(b *testing.B) {
	m, err := prommetrics.New(prometheus.NewRegistry(), prommetrics.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sev := bbm.JobStartEvent{Migration: "fill", JobID: 1, Start: bbm.IntKey(1), End: bbm.IntKey(1000), Rows: 1000, BatchSize: 1000}
	ev := bbm.JobEvent{JobStartEvent: sev, Duration: 250 * time.Millisecond, NextBatchSize: 1000}
	for _, c := range []struct {
		name string
		obs  bbm.Observer
	}{{"prommetrics", m.BBM()}, {"none", bbm.ObserverFuncs{}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.obs.JobEnd(c.obs.JobStart(ctx, sev), ev)
			}
		})
	}
}
