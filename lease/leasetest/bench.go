package leasetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// ContendedRate is what BenchContended measured.
type ContendedRate struct {
	Workers         int
	AcquiredPerSec  float64 // successful Acquire+Release cycles
	AttemptsPerSec  float64 // Acquire calls, most of them answered ErrHeld
	AttemptsPerLock float64
}

// String formats the rate for logs.
func (r ContendedRate) String() string {
	return fmt.Sprintf("%d goroutines: %.0f acquisitions/s, %.0f attempts/s (%.1f attempts per acquisition)",
		r.Workers, r.AcquiredPerSec, r.AttemptsPerSec, r.AttemptsPerLock)
}

// BenchContended measures contended throughput: workers goroutines call
// Acquire on one key in a tight loop, releasing at once when they get it,
// until b.N acquisitions have been made. It reports acquisitions/s and
// attempts/s as benchmark metrics and returns them.
func BenchContended(b *testing.B, lk lease.Locker, key string, workers int) ContendedRate {
	b.Helper()
	ctx := context.Background()
	var acquired, attempts atomic.Int64
	target := int64(b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for acquired.Load() < target {
				attempts.Add(1)
				l, err := lk.Acquire(ctx, key, time.Minute)
				if errors.Is(err, lease.ErrHeld) {
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				acquired.Add(1)
				if err := l.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	r := ContendedRate{
		Workers:         workers,
		AcquiredPerSec:  float64(acquired.Load()) / elapsed,
		AttemptsPerSec:  float64(attempts.Load()) / elapsed,
		AttemptsPerLock: float64(attempts.Load()) / float64(max(acquired.Load(), 1)),
	}
	b.ReportMetric(r.AcquiredPerSec, "acquisitions/s")
	b.ReportMetric(r.AttemptsPerSec, "attempts/s")
	return r
}

// Baseline is what BenchAcquireRelease compares a backend's Acquire+Release
// with: two round trips that do the least the store can do, say.
type Baseline struct {
	// Name is the baseline's sub-benchmark's name.
	Name string
	// Line names the comparison in the printed line (the first field after
	// "ferry-bench:").
	Line string
	// Note says in a few words what the comparison means.
	Note string
	// Target is the ratio to stay under; 0 for none.
	Target float64
	// Run does one sample's work, failing b on error.
	Run func(b *testing.B)
}

// BenchAcquireRelease measures an uncontended Acquire+Release of key on lk
// as sub-benchmark "ferry" and each baseline as a sub-benchmark of its
// own. Then it takes samples of all of them interleaved (see Medians) and
// prints one line per baseline,
//
//	ferry-bench: <Line> ferry=<median> baseline=<median> ratio=<r> [target<=<t>] (<Note>)
//
// as the ratios of medians are what stay steady on a loaded machine.
func BenchAcquireRelease(b *testing.B, lk lease.Locker, key string, samples int, baselines ...Baseline) {
	ctx := context.Background()
	ferry := func(b *testing.B) {
		l, err := lk.Acquire(ctx, key, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	fns := []func(*testing.B){ferry}
	b.Run("ferry", func(b *testing.B) {
		for b.Loop() {
			ferry(b)
		}
	})
	for _, base := range baselines {
		fns = append(fns, base.Run)
		b.Run(base.Name, func(b *testing.B) {
			for b.Loop() {
				base.Run(b)
			}
		})
	}
	calls := make([]func(), len(fns))
	for i, fn := range fns {
		calls[i] = func() { fn(b) }
	}
	m := Medians(samples, calls...)
	for i, base := range baselines {
		target := ""
		if base.Target > 0 {
			target = fmt.Sprintf(" target<=%g", base.Target)
		}
		fmt.Printf("ferry-bench: %s ferry=%s baseline=%s ratio=%.2f%s (%s)\n",
			base.Line, m[0], m[i+1], float64(m[0])/float64(m[i+1]), target, base.Note)
	}
}

// Medians runs each of fns n times, interleaved one call at a time so that
// all of them see the same machine load, and returns the median duration
// of each. Medians keep a loaded machine's scheduling hiccups out of
// ratios between them. Round r starts with fns[r mod len(fns)], so each
// function follows each other equally often: what one call leaves behind
// in the store (WAL to write, a page to prune) is not always paid by the
// same neighbour.
func Medians(n int, fns ...func()) []time.Duration {
	samples := make([][]time.Duration, len(fns))
	for i := range samples {
		samples[i] = make([]time.Duration, 0, n)
	}
	for r := range n {
		for k := range fns {
			i := (r + k) % len(fns)
			start := time.Now()
			fns[i]()
			samples[i] = append(samples[i], time.Since(start))
		}
	}
	out := make([]time.Duration, len(fns))
	for i, s := range samples {
		slices.Sort(s)
		out[i] = s[len(s)/2]
	}
	return out
}
