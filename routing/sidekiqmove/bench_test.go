package sidekiqmove

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkMoveQueue moves 50,000 queued jobs (plus 5,000 of a worker that
// stays, which are read but not written) and compares the mover's jobs per
// second with the simplest atomic way to move a queue, in the same run: one
// LMOVE per job, which can neither pick jobs by worker nor rewrite their
// payload. The mover reads a window and moves it in one script (both per
// batch of 100); its payload reading and rewriting run in Go.
func BenchmarkMoveQueue(b *testing.B) {
	const moving, staying = 50_000, 5_000
	ctx := context.Background()
	c := newRedis(b)
	fill := func() {
		fillJobs(b, c, moving+staying, func(p redis.Pipeliner, i int, raw string) { p.LPush(ctx, "queue:old", raw) })
	}
	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{Sets: []string{}})
	if err != nil {
		b.Fatal(err)
	}
	var ferry, baseline time.Duration
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		start := time.Now()
		rep, err := m.Run(ctx)
		ferry += time.Since(start)
		if err != nil || rep.Moved() != moving || !rep.Done {
			b.Fatalf("moved %d, done %v: %v", rep.Moved(), rep.Done, err)
		}

		b.StopTimer()
		fill()
		start = time.Now()
		for {
			err := c.LMove(ctx, "queue:old", "queue:new", "RIGHT", "LEFT").Err()
			if err == redis.Nil {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		baseline += time.Since(start)
		b.StartTimer()
	}
	ferryRate := float64(b.N*moving) / ferry.Seconds()
	baseRate := float64(b.N*(moving+staying)) / baseline.Seconds()
	b.ReportMetric(ferryRate, "jobs/s")
	b.ReportMetric(baseRate, "lmove-jobs/s")
	fmt.Printf("ferry-bench: sidekiqmove-queue ferry=%.0fjobs/s baseline=%.0fjobs/s ratio=%.2f (%d of %d jobs moved by worker with payload rewrite, 2 passes, vs one LMOVE per job moving everything; redis-server on a unix socket)\n",
		ferryRate, baseRate, ferryRate/baseRate, moving, moving+staying)
}

// BenchmarkMoveRetrySet rewrites 20,000 retry jobs (of 22,000) to their new
// queue, in place.
func BenchmarkMoveRetrySet(b *testing.B) {
	const moving, staying = 20_000, 2_000
	ctx := context.Background()
	c := newRedis(b)
	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{Sets: []string{"retry"}})
	if err != nil {
		b.Fatal(err)
	}
	var ferry time.Duration
	for b.Loop() {
		b.StopTimer()
		fillJobs(b, c, moving+staying, func(p redis.Pipeliner, i int, raw string) {
			p.ZAdd(ctx, "retry", redis.Z{Score: float64(1700000000 + i), Member: raw})
		})
		b.StartTimer()
		start := time.Now()
		rep, err := m.Run(ctx)
		ferry += time.Since(start)
		if err != nil || rep.Moved() != moving {
			b.Fatalf("moved %d: %v", rep.Moved(), err)
		}
	}
	rate := float64(b.N*moving) / ferry.Seconds()
	b.ReportMetric(rate, "jobs/s")
	fmt.Printf("ferry-bench: sidekiqmove-retry-set ferry=%.0fjobs/s baseline=none (%d of %d retry jobs rewritten in place, 2 passes)\n", rate, moving, moving+staying)
}

// fillJobs empties Redis and adds n jobs of queue "old" with add: every
// eleventh is CWorker's, the others AWorker's.
func fillJobs(b *testing.B, c *redis.Client, n int, add func(p redis.Pipeliner, i int, raw string)) {
	b.Helper()
	ctx := context.Background()
	if err := c.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			class := "AWorker"
			if i%11 == 10 {
				class = "CWorker"
			}
			add(p, i, payload(class, "old", i))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
