package sidekiqmove

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/routing"
)

func newRedis(t testing.TB) *redis.Client {
	t.Helper()
	srv := redistest.New(t)
	c := redis.NewClient(srv.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// payload builds a job as Sidekiq's client writes it, with a big integer
// and a float that a JSON re-encoding would change.
func payload(class, queue string, n int) string {
	return fmt.Sprintf(`{"retry":true,"queue":%q,"args":[%d,12345678901234567890,{"queue":"nested"}],"class":%q,"jid":"jid%06d","created_at":1700000000.1234567,"enqueued_at":1700000001.000001}`,
		queue, n, class, n)
}

// push is what a Sidekiq client does: LPUSH to the queue, SADD to queues.
func push(ctx context.Context, t testing.TB, c redis.Cmdable, ns, queue, raw string) {
	t.Helper()
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, ns+"queue:"+queue, raw)
		p.SAdd(ctx, ns+"queues", queue)
		return nil
	})
	require.NoError(t, err)
}

func lrange(ctx context.Context, t testing.TB, c redis.Cmdable, key string) []string {
	t.Helper()
	items, err := c.LRange(ctx, key, 0, -1).Result()
	require.NoError(t, err)
	return items
}

func moved(raw, to string) string {
	j, err := parseJob(raw)
	if err != nil {
		panic(err)
	}
	return j.withQueue(raw, to)
}

func TestMoveQueuedJobs(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	var wantNew, wantOld []string
	for i := range 250 {
		switch i % 3 {
		case 0, 1:
			raw := payload("ElasticCommitIndexerWorker", "shared", i)
			push(ctx, t, c, "", "shared", raw)
			wantNew = append([]string{moved(raw, "elasticsearch")}, wantNew...)
		default:
			raw := payload("NewIssueWorker", "shared", i)
			push(ctx, t, c, "", "shared", raw)
			wantOld = append([]string{raw}, wantOld...)
		}
	}
	existing := payload("ElasticDeleteProjectWorker", "elasticsearch", 999)
	push(ctx, t, c, "", "elasticsearch", existing)

	obs := &recorder{}
	m, err := New(c, []Move{{Worker: "ElasticCommitIndexerWorker", From: "shared", To: "elasticsearch"}}, &Options{BatchSize: 16, Observer: obs})
	require.NoError(t, err)
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.True(t, rep.Done)
	require.Equal(t, 2, rep.Passes, "the second pass finds nothing to move")
	require.Equal(t, 167, rep.Moved())

	// Moved jobs keep their order and are behind what the new queue held;
	// only the queue value changed.
	require.Equal(t, append(wantNew, existing), lrange(ctx, t, c, "queue:elasticsearch"))
	// The other worker's jobs were not touched, not even reordered.
	require.Equal(t, wantOld, lrange(ctx, t, c, "queue:shared"))
	queues, err := c.SMembers(ctx, "queues").Result()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"shared", "elasticsearch"}, queues)

	require.Equal(t, []MoveCount{{Move: Move{Worker: "ElasticCommitIndexerWorker", From: "shared", To: "elasticsearch"}, Source: "queue:shared", Jobs: 167}}, rep.Moves)
	src := rep.Sources[0]
	require.Equal(t, "queue:shared", src.Key)
	require.Equal(t, map[string]int{"NewIssueWorker": 83}, src.Stayed)
	require.Equal(t, 250+83, src.Examined, "pass 2 reads the jobs left in place again")
	require.NotEmpty(t, obs.progress)
	require.Len(t, obs.passes, 2)
	require.Equal(t, 167, obs.progress[len(obs.progress)-1].Moved)
	require.Contains(t, rep.String(), "167 jobs moved in 2 passes")
	require.Contains(t, rep.String(), "queue:shared: 83 jobs of workers that stay (NewIssueWorker 83)")
}

type recorder struct {
	progress []Progress
	passes   []PassSummary
}

func (r *recorder) PassStart(ctx context.Context, e PassStartEvent) context.Context {
	return context.WithValue(ctx, passKey{}, e.Pass)
}

func (r *recorder) Progressed(ctx context.Context, p Progress) {
	if ctx.Value(passKey{}) != p.Pass {
		panic("progress reported outside its pass's context")
	}
	r.progress = append(r.progress, p)
}

func (r *recorder) PassEnd(ctx context.Context, p PassSummary) {
	if ctx.Value(passKey{}) != p.Pass {
		panic("PassEnd without PassStart's context")
	}
	r.passes = append(r.passes, p)
}

type passKey struct{}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	for i := range 40 {
		push(ctx, t, c, "", "old", payload("AWorker", "old", i))
		push(ctx, t, c, "", "old", payload("BWorker", "old", 100+i))
	}
	require.NoError(t, c.ZAdd(ctx, "retry", redis.Z{Score: 1, Member: payload("AWorker", "old", 500)}).Err())
	before := dump(ctx, t, c)

	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{DryRun: true, BatchSize: 7})
	require.NoError(t, err)
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, before, dump(ctx, t, c))
	require.True(t, rep.DryRun)
	require.False(t, rep.Done)
	require.Equal(t, 1, rep.Passes)
	require.Equal(t, 41, rep.Moved())
	require.Contains(t, rep.String(), "41 jobs would move in 1 pass")
	require.Equal(t, 80, rep.Sources[0].Examined)
}

// dump returns every key with its content, to compare states.
func dump(ctx context.Context, t testing.TB, c *redis.Client) map[string]any {
	t.Helper()
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	out := map[string]any{}
	for _, k := range keys {
		switch typ := c.Type(ctx, k).Val(); typ {
		case "list":
			out[k] = lrange(ctx, t, c, k)
		case "zset":
			out[k] = c.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "set":
			m := c.SMembers(ctx, k).Val()
			slices.Sort(m)
			out[k] = m
		default:
			out[k] = typ
		}
	}
	return out
}

func TestMoveScheduledAndRetryJobs(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	a1, a2 := payload("AWorker", "old", 1), payload("AWorker", "old", 2)
	aOther := payload("AWorker", "other", 3) // names another queue: not this move's
	b := payload("BWorker", "old", 4)        // a worker that stays
	aDead := payload("AWorker", "old", 5)
	mailer := `{"class":"Sidekiq::ActiveJob::Wrapper","wrapped":"ActionMailer::MailDeliveryJob","queue":"mailers","args":[{"job_class":"ActionMailer::MailDeliveryJob"}],"jid":"m1"}`
	require.NoError(t, c.ZAdd(ctx, "schedule", redis.Z{Score: 1700000000.123456, Member: a1}, redis.Z{Score: 2, Member: b}, redis.Z{Score: 3, Member: mailer}).Err())
	require.NoError(t, c.ZAdd(ctx, "retry", redis.Z{Score: 1800000000.5, Member: a2}, redis.Z{Score: 4, Member: aOther}).Err())
	require.NoError(t, c.ZAdd(ctx, "dead", redis.Z{Score: 5, Member: aDead}).Err())

	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, nil)
	require.NoError(t, err)
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.True(t, rep.Done)
	require.Equal(t, 2, rep.Moved())
	require.Equal(t, []redis.Z{{Score: 2, Member: b}, {Score: 3, Member: mailer}, {Score: 1700000000.123456, Member: moved(a1, "new")}},
		c.ZRangeWithScores(ctx, "schedule", 0, -1).Val())
	require.Equal(t, []redis.Z{{Score: 4, Member: aOther}, {Score: 1800000000.5, Member: moved(a2, "new")}},
		c.ZRangeWithScores(ctx, "retry", 0, -1).Val())
	require.Equal(t, []string{aDead}, c.ZRange(ctx, "dead", 0, -1).Val(), "the dead set only when asked")

	m, err = New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{Sets: []string{"dead"}})
	require.NoError(t, err)
	rep, err = m.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Moved())
	require.Equal(t, []string{moved(aDead, "new")}, c.ZRange(ctx, "dead", 0, -1).Val())
}

func TestMalformedJobsStayAndAreReported(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	bad := []string{`not json`, `{"queue":"old"}`, `{"class":"AWorker","queue":"old"`, `{"class":"AWorker","queue":"old","queue":"x"}`}
	var want []string
	for i, raw := range bad {
		push(ctx, t, c, "", "old", payload("AWorker", "old", i))
		push(ctx, t, c, "", "old", raw)
		want = append([]string{raw}, want...)
	}
	require.NoError(t, c.ZAdd(ctx, "retry", redis.Z{Score: 1, Member: `{"class":"AWorker"}`}, redis.Z{Score: 2, Member: payload("AWorker", "old", 9)}).Err())

	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{MaxSamples: 2, BatchSize: 3})
	require.NoError(t, err)
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.True(t, rep.Done)
	require.Equal(t, 5, rep.Moved())
	require.Equal(t, want, lrange(ctx, t, c, "queue:old"), "malformed payloads stay, in order")
	require.Equal(t, []string{`{"class":"AWorker"}`}, c.ZRange(ctx, "retry", 0, 0).Val())
	require.Equal(t, 5, rep.MalformedTotal)
	require.Len(t, rep.Malformed, 2)
	require.Equal(t, 4, rep.Sources[0].Malformed)
	require.Equal(t, 1, rep.Sources[2].Malformed)
	require.Contains(t, rep.String(), "4 malformed, left in place")
	require.Contains(t, rep.String(), `malformed in queue:old: not JSON`)
}

func TestNamespaceAndChains(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	const ns = "resque:gitlab:"
	a, b := payload("AWorker", "q1", 1), payload("BWorker", "q2", 2)
	push(ctx, t, c, ns, "q1", a)
	push(ctx, t, c, ns, "q2", b)
	push(ctx, t, c, "", "q1", payload("AWorker", "q1", 3)) // outside the namespace: not Sidekiq's

	// A moves into q2 while B moves out of it: A's jobs stay in q2.
	m, err := New(c, []Move{{Worker: "AWorker", From: "q1", To: "q2"}, {Worker: "BWorker", From: "q2", To: "q3"}}, &Options{Namespace: ns})
	require.NoError(t, err)
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Moved())
	require.Equal(t, []string{moved(a, "q2")}, lrange(ctx, t, c, ns+"queue:q2"))
	require.Equal(t, []string{moved(b, "q3")}, lrange(ctx, t, c, ns+"queue:q3"))
	require.Empty(t, lrange(ctx, t, c, ns+"queue:q1"))
	require.Len(t, lrange(ctx, t, c, "queue:q1"), 1)
	require.ElementsMatch(t, []string{"q1", "q2", "q3"}, c.SMembers(ctx, ns+"queues").Val())
}

func TestSetConflictLeavesBoth(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	a := payload("AWorker", "old", 1)
	require.NoError(t, c.ZAdd(ctx, "schedule", redis.Z{Score: 1, Member: a}, redis.Z{Score: 2, Member: moved(a, "new")}).Err())
	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{MaxPasses: 2})
	require.NoError(t, err)
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.False(t, rep.Done, "a conflict is not done")
	require.Equal(t, 2, rep.Sources[1].Conflicts)
	require.Equal(t, int64(2), c.ZCard(ctx, "schedule").Val())
	require.Contains(t, rep.String(), "the moved payload already exists")
}

// The rate limit spaces batches out. A lower bound only: a loaded machine
// can make the run slower, never faster.
func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	for i := range 60 {
		push(ctx, t, c, "", "old", payload("AWorker", "old", i))
	}
	m, err := New(c, []Move{{Worker: "AWorker", From: "old", To: "new"}}, &Options{Rate: 100, BatchSize: 10})
	require.NoError(t, err)
	start := time.Now()
	rep, err := m.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 60, rep.Moved())
	// A burst of 10, then 50 jobs at 100/s.
	require.GreaterOrEqual(t, time.Since(start), 450*time.Millisecond)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = m.Run(cancelled)
	require.ErrorIs(t, err, context.Canceled)
}

func TestNewValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "localhost:1"})
	defer c.Close()
	for _, tt := range []struct {
		moves []Move
		opts  *Options
		msg   string
	}{
		{[]Move{{Worker: "A", From: "x"}}, nil, "worker, From and To are required"},
		{[]Move{{Worker: "A", From: "x", To: "x"}}, nil, "the same queue"},
		{[]Move{{Worker: "A", From: "x", To: "y"}, {Worker: "A", From: "x", To: "z"}}, nil, "to both y and z"},
		{nil, &Options{Rate: -1}, "negative Rate"},
		{nil, &Options{Sets: []string{""}}, "empty set name"},
	} {
		_, err := New(c, tt.moves, tt.opts)
		require.ErrorIs(t, err, ErrInvalidMove)
		require.ErrorContains(t, err, tt.msg)
	}
	_, err := New(nil, nil, nil)
	require.ErrorIs(t, err, ErrInvalidMove)
	// The same move twice, and one worker from two queues, are fine.
	_, err = New(c, []Move{{Worker: "A", From: "x", To: "y"}, {Worker: "A", From: "x", To: "y"}, {Worker: "A", From: "w", To: "y"}}, nil)
	require.NoError(t, err)
}

func TestMovesFromChanges(t *testing.T) {
	workers := append(routing.DummyWorkers(),
		routing.Worker{WorkerName: "ElasticCommitIndexerWorker", QueueName: "elastic_commit_indexer", FeatureCategory: "global_search"},
		routing.Worker{WorkerName: "PostReceive", QueueName: "post_receive"},
	)
	before, err := routing.NewRouter(nil, nil)
	require.NoError(t, err)
	after, err := routing.NewRouter([]routing.Rule{{Query: "feature_category=global_search|feature_category=not_owned", Queue: "elasticsearch"}}, nil)
	require.NoError(t, err)
	plan, err := routing.Plan(before, after, workers)
	require.NoError(t, err)
	require.Equal(t, []Move{{Worker: "ElasticCommitIndexerWorker", From: "elastic_commit_indexer", To: "elasticsearch"}}, MovesFromChanges(plan.Changes))
	require.Empty(t, MovesFromChanges([]routing.Change{{Worker: routing.Worker{WorkerName: "New"}, To: "x"}}))
	require.True(t, strings.HasPrefix(Move{Worker: "A", From: "x", To: "y"}.String(), "A: x -> y"))
}
