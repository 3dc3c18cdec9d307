package storage_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// recorder keeps what an Observer was told.
type recorder struct {
	mu        sync.Mutex
	routes    map[storage.RouteReason]int
	targets   map[storage.Target]int
	checks    []storage.ReplicaEvent
	fallbacks []storage.FallbackEvent
}

func newRecorder() *recorder {
	return &recorder{routes: map[storage.RouteReason]int{}, targets: map[storage.Target]int{}}
}

func (r *recorder) observer() storage.Observer {
	return storage.ObserverFuncs{
		OnReadRouted: func(_ context.Context, e storage.RouteEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.routes[e.Reason]++
			r.targets[e.Target]++
		},
		OnReplicaCheckEnd: func(_ context.Context, e storage.ReplicaEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.checks = append(r.checks, e)
		},
		OnReplicaFellBack: func(_ context.Context, e storage.FallbackEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.fallbacks = append(r.fallbacks, e)
		},
	}
}

func (r *recorder) count(reason storage.RouteReason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes[reason]
}

func TestObserverSeesRoutingAndLag(t *testing.T) {
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, time.Second) // behind for a moment even on a loaded machine
	rec := newRecorder()
	db, err := storage.Open(ctx, storage.Config{
		PrimaryURL: rep.PrimaryURL, ReplicaURLs: []string{rep.ReplicaURL},
		ReplicaCheckInterval: 20 * time.Millisecond, Logger: quiet,
		Observer: storage.MultiObserver(rec.observer(), nil),
	})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(ctx, `CREATE TABLE repos (path text PRIMARY KEY, state text NOT NULL)`)
	require.NoError(t, err)
	waitReplicated(t, db)
	require.Positive(t, rec.count(storage.RouteCaughtUp))

	_, target := db.Choose(storage.UsePrimary(ctx), "a/b")
	require.Equal(t, storage.TargetPrimary, target)
	require.Equal(t, 1, rec.count(storage.RouteUsePrimary))

	// Right after a write, the delayed replica has not replayed it.
	require.NoError(t, db.WriteTx(ctx, "a/b", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO repos VALUES ('a/b', 'default')`)
		return err
	}))
	behind := rec.count(storage.RouteReplicasBehind)
	_, target = db.Choose(ctx, "a/b")
	require.Equal(t, storage.TargetPrimary, target)
	require.Equal(t, behind+1, rec.count(storage.RouteReplicasBehind))

	rec.mu.Lock()
	require.NotEmpty(t, rec.checks)
	last := rec.checks[len(rec.checks)-1]
	rec.mu.Unlock()
	require.NoError(t, last.Err)
	require.NotEmpty(t, last.Replica)
	require.Positive(t, last.Duration)

	// A replica that dies: the read chosen before falls back, later reads
	// see the replica down.
	waitReplicated(t, db)
	q, target := db.Choose(ctx, "")
	require.Equal(t, storage.TargetReplica, target)
	require.NoError(t, rep.Replica.Stop())
	var n int
	require.NoError(t, q.QueryRow(ctx, `SELECT count(*) FROM repos`).Scan(&n))
	_, target = db.Choose(ctx, "")
	require.Equal(t, storage.TargetPrimary, target)
	require.Equal(t, 1, rec.count(storage.RouteReplicasDown))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.fallbacks, 1)
	require.Error(t, rec.fallbacks[0].Err)
}

func TestObserverWithoutReplicas(t *testing.T) {
	ctx := context.Background()
	rec := newRecorder()
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: storagetest.URL(t), Logger: quiet, Observer: rec.observer()})
	require.NoError(t, err)
	defer db.Close()
	db.Read(ctx, "k")
	db.Read(storage.UsePrimary(ctx), "k")
	require.Equal(t, 2, rec.count(storage.RouteNoReplicas), "without replicas the reason is no_replicas, forced or not")
	require.Equal(t, 2, rec.targets[storage.TargetPrimary])
}

func TestMultiObserverDropsNil(t *testing.T) {
	rec := newRecorder()
	o := storage.MultiObserver(nil, rec.observer(), rec.observer())
	o.ReadRouted(context.Background(), storage.RouteEvent{Reason: storage.RouteCaughtUp})
	o.ReplicaCheckEnd(o.ReplicaCheckStart(context.Background(), storage.ReplicaCheckStartEvent{}), storage.ReplicaEvent{})
	o.ReplicaFellBack(context.Background(), storage.FallbackEvent{})
	require.Equal(t, 2, rec.count(storage.RouteCaughtUp))
	require.Len(t, rec.checks, 2)
	require.Len(t, rec.fallbacks, 2)
	storage.MultiObserver().ReadRouted(context.Background(), storage.RouteEvent{})
}

type spanKey struct{}

func spanOf(ctx context.Context) string {
	s, _ := ctx.Value(spanKey{}).(string)
	return s
}

// checkTracer is a pgx tracer that records the span in whose context each
// reading of a replica's replay position runs.
type checkTracer struct {
	mu    sync.Mutex
	under []string
}

func (c *checkTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "pg_last_wal_replay_lsn") {
		c.mu.Lock()
		c.under = append(c.under, spanOf(ctx))
		c.mu.Unlock()
	}
	return ctx
}

func (c *checkTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A replica check's queries run under the context ReplicaCheckStart
// returned (a pgx tracer's spans are children of the check's), and
// ReplicaCheckEnd gets it back.
func TestReplicaCheckRunsUnderStartContext(t *testing.T) {
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, 0)
	cfg, err := pgxpool.ParseConfig(rep.ReplicaURL)
	require.NoError(t, err)
	tracer := &checkTracer{}
	cfg.ConnConfig.Tracer = tracer
	replica, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer replica.Close()
	primary, err := pgxpool.New(ctx, rep.PrimaryURL)
	require.NoError(t, err)
	defer primary.Close()

	var mu sync.Mutex
	var ends []string
	db, err := storage.WrapWith(storage.Config{ReplicaCheckInterval: 20 * time.Millisecond, Logger: quiet,
		Observer: storage.ObserverFuncs{
			OnReplicaCheckStart: func(ctx context.Context, e storage.ReplicaCheckStartEvent) context.Context {
				return context.WithValue(ctx, spanKey{}, "check "+e.Replica)
			},
			OnReplicaCheckEnd: func(ctx context.Context, _ storage.ReplicaEvent) {
				mu.Lock()
				defer mu.Unlock()
				ends = append(ends, spanOf(ctx))
			},
		}}, storage.FromPool(primary), storage.FromPool(replica))
	require.NoError(t, err)
	defer db.Close()
	waitReplicated(t, db)

	tracer.mu.Lock()
	defer tracer.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, tracer.under)
	for _, s := range append(tracer.under, ends...) {
		require.True(t, strings.HasPrefix(s, "check "), "a check's query or End outside its Start's context: %q", s)
	}
}
