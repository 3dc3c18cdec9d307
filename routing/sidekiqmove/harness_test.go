package sidekiqmove

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// A live Sidekiq around the mover: old clients keep pushing to the old
// queues, new clients to the new one, jobs get scheduled and retried,
// servers pop from old and new queues, and a scheduler enqueues due jobs,
// all while the mover runs. Every job has a unique jid; at the end every
// job must have been consumed exactly once, jobs of workers that stay
// untouched and on their own queue.

// The workers: A and B move to the shard; C shares A's old queue and stays;
// D has a queue of its own and stays.
var liveMoves = []Move{
	{Worker: "AWorker", From: "a_old", To: "shard"},
	{Worker: "BWorker", From: "b_old", To: "shard"},
}

var liveQueues = []string{"a_old", "b_old", "shard", "d"}

type produced struct {
	class, queue, payload string
}

type consumed struct {
	queue, payload string
}

type liveSidekiq struct {
	c *redis.Client

	mu       sync.Mutex
	produced map[string]produced   // jid → job
	consumed map[string][]consumed // jid → every time it was consumed

	seq      atomic.Int64
	inflight atomic.Int64 // producer calls under way
}

func newLiveSidekiq(c *redis.Client) *liveSidekiq {
	return &liveSidekiq{c: c, produced: map[string]produced{}, consumed: map[string][]consumed{}}
}

func (s *liveSidekiq) job(class, queue string) (jid, raw string) {
	n := s.seq.Add(1)
	jid = fmt.Sprintf("jid%08d", n)
	raw = fmt.Sprintf(`{"retry":3,"queue":%q,"args":[%d,9007199254740993,"x"],"class":%q,"jid":%q,"created_at":%d.%06d}`,
		queue, n, class, jid, 1700000000+n, n%1000000)
	s.mu.Lock()
	s.produced[jid] = produced{class: class, queue: queue, payload: raw}
	s.mu.Unlock()
	return jid, raw
}

// enqueue pushes a job as a Sidekiq client does.
func (s *liveSidekiq) enqueue(ctx context.Context, class, queue string) error {
	_, raw := s.job(class, queue)
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, "queue:"+queue, raw)
		p.SAdd(ctx, "queues", queue)
		return nil
	})
	return err
}

// schedule adds a job to a sorted set, due in delay.
func (s *liveSidekiq) schedule(ctx context.Context, set, class, queue string, delay time.Duration) error {
	_, raw := s.job(class, queue)
	at := float64(time.Now().Add(delay).UnixMicro()) / 1e6
	return s.c.ZAdd(ctx, set, redis.Z{Score: at, Member: raw}).Err()
}

// preload puts n jobs of every worker on the old queues, in one pipeline.
func (s *liveSidekiq) preload(ctx context.Context, t testing.TB, n int) {
	t.Helper()
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for range n {
			for _, w := range [][2]string{{"AWorker", "a_old"}, {"BWorker", "b_old"}, {"CWorker", "a_old"}, {"DWorker", "d"}} {
				_, raw := s.job(w[0], w[1])
				p.LPush(ctx, "queue:"+w[1], raw)
			}
		}
		return nil
	})
	require.NoError(t, err)
}

func (s *liveSidekiq) record(queue, raw string) error {
	var j struct {
		JID string `json:"jid"`
	}
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return fmt.Errorf("consumed an unreadable payload %q: %w", raw, err)
	}
	s.mu.Lock()
	s.consumed[j.JID] = append(s.consumed[j.JID], consumed{queue: queue, payload: raw})
	s.mu.Unlock()
	return nil
}

// traffic runs producers, servers and a scheduler until ctx ends. Their
// Redis calls do not take ctx: cancelling a call in flight could drop a
// reply (a popped job) that Redis already sent, which is the harness's
// loss, not the mover's. They stop between calls.
func (s *liveSidekiq) traffic(ctx context.Context, g *errgroup.Group, producing *atomic.Bool) {
	bg := context.Background()
	every := func(d time.Duration, f func() error) {
		g.Go(func() error {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
				s.inflight.Add(1)
				var err error
				if producing.Load() {
					err = f()
				}
				s.inflight.Add(-1)
				if err != nil {
					return err
				}
			}
		})
	}
	// Old clients (not yet switched) and new clients.
	every(2*time.Millisecond, func() error { return s.enqueue(bg, "AWorker", "a_old") })
	every(3*time.Millisecond, func() error { return s.enqueue(bg, "BWorker", "b_old") })
	every(2*time.Millisecond, func() error { return s.enqueue(bg, "CWorker", "a_old") })
	every(4*time.Millisecond, func() error { return s.enqueue(bg, "DWorker", "d") })
	every(2*time.Millisecond, func() error { return s.enqueue(bg, "AWorker", "shard") })
	every(3*time.Millisecond, func() error { return s.enqueue(bg, "BWorker", "shard") })
	// Scheduled jobs and retries, some due at once, some later.
	every(5*time.Millisecond, func() error { return s.schedule(bg, "schedule", "AWorker", "a_old", 50*time.Millisecond) })
	every(7*time.Millisecond, func() error { return s.schedule(bg, "retry", "BWorker", "b_old", 0) })
	every(9*time.Millisecond, func() error { return s.schedule(bg, "schedule", "CWorker", "a_old", 20*time.Millisecond) })

	// Servers listening to old and new queues (step 1 of the plan).
	keys := make([]string, len(liveQueues))
	for i, q := range liveQueues {
		keys[i] = "queue:" + q
	}
	for range 2 {
		g.Go(func() error {
			for ctx.Err() == nil {
				time.Sleep(time.Millisecond) // the work of the previous job
				res, err := s.c.BRPop(bg, 50*time.Millisecond, keys...).Result()
				if err == redis.Nil {
					continue
				}
				if err != nil {
					return err
				}
				if err := s.record(strings.TrimPrefix(res[0], "queue:"), res[1]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// The scheduler: claim due jobs with ZREM and push them to their queue.
	g.Go(func() error {
		for ctx.Err() == nil {
			if err := s.enqueueDue(bg, fmt.Sprint(float64(time.Now().UnixMicro())/1e6)); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	})
}

// stopProducing stops the producers and waits for the pushes under way.
func (s *liveSidekiq) stopProducing(producing *atomic.Bool) {
	producing.Store(false)
	for s.inflight.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
}

// enqueueDue moves due jobs of schedule and retry to their queues as
// Sidekiq's poller does, atomically per job.
func (s *liveSidekiq) enqueueDue(ctx context.Context, now string) error {
	for _, set := range []string{"schedule", "retry"} {
		for {
			n, err := pollScript.Run(ctx, s.c, []string{set}, now).Int()
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

var pollScript = redis.NewScript(`
local jobs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 50)
for _, job in ipairs(jobs) do
  redis.call('ZREM', KEYS[1], job)
  local q = cjson.decode(job)['queue']
  redis.call('LPUSH', 'queue:' .. q, job)
end
return #jobs
`)

// drain consumes everything left: due or not, every set's jobs are
// enqueued, then every list is emptied.
func (s *liveSidekiq) drain(ctx context.Context, t testing.TB) {
	t.Helper()
	require.NoError(t, s.enqueueDue(ctx, "+inf"))
	for _, q := range liveQueues {
		for {
			raw, err := s.c.RPop(ctx, "queue:"+q).Result()
			if err == redis.Nil {
				break
			}
			require.NoError(t, err)
			require.NoError(t, s.record(q, raw))
		}
	}
}

// check verifies the no-loss, no-duplicate and untouched rules and returns
// the number of jobs and how many were consumed from the shard after a move.
func (s *liveSidekiq) check(t testing.TB) (jobs, movedJobs int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for jid, p := range s.produced {
		got := s.consumed[jid]
		require.Len(t, got, 1, "job %s (%s on %s) must be consumed exactly once", jid, p.class, p.queue)
		c := got[0]
		switch p.class {
		case "CWorker", "DWorker":
			require.Equal(t, p.queue, c.queue, "a worker that stays is consumed from its own queue")
			require.Equal(t, p.payload, c.payload, "a job of a worker that stays is never rewritten")
		default:
			switch c.payload {
			case p.payload:
				require.Equal(t, p.queue, c.queue, "an unmoved job is consumed where it was pushed")
			case moved(p.payload, "shard"):
				require.Equal(t, "shard", c.queue, "a moved job is consumed from the new queue")
				movedJobs++
			default:
				t.Fatalf("job %s was changed beyond its queue: %q -> %q", jid, p.payload, c.payload)
			}
		}
	}
	require.Len(t, s.consumed, len(s.produced), "nothing consumed that was not produced")
	return len(s.produced), movedJobs
}

// assertOldQueuesHoldNoMovingJob checks, with nothing producing or
// consuming, that the old queues and the sets hold no job of a moving
// worker any more.
func assertOldQueuesHoldNoMovingJob(ctx context.Context, t testing.TB, c *redis.Client) {
	t.Helper()
	for _, q := range []string{"a_old", "b_old"} {
		for _, raw := range lrange(ctx, t, c, "queue:"+q) {
			j, err := parseJob(raw)
			require.NoError(t, err)
			require.Equal(t, "CWorker", j.worker, "left in queue:%s", q)
		}
	}
	for _, set := range []string{"schedule", "retry"} {
		for _, raw := range c.ZRange(ctx, set, 0, -1).Val() {
			j, err := parseJob(raw)
			require.NoError(t, err)
			if j.worker == "AWorker" || j.worker == "BWorker" {
				require.Equal(t, "shard", j.queue, "left in %s", set)
			}
		}
	}
}
