package bbm_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// testLogger discards logs unless BBM_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BBM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fastOptions are Options for tests: quick backoffs and leases, fixed batch
// sizes.
func fastOptions() bbm.Options {
	return bbm.Options{
		Logger:          testLogger(),
		RetryBackoff:    time.Millisecond,
		MaxRetryBackoff: 5 * time.Millisecond,
		Interval:        5 * time.Millisecond,
		MaxBackoff:      50 * time.Millisecond,
		JobTimeout:      10 * time.Second,
		JobLease:        time.Second,
		Adaptive:        bbm.AdaptiveOptions{Off: true},
	}
}

func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	// Room for Parallelism 4 (a transaction per job) and lease renewals
	// on any machine (pgx's default is max(4, CPUs)).
	cfg.MaxConns = max(cfg.MaxConns, 8)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// poolOf is a pool on url that opens at most maxConns connections.
func poolOf(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// itemsTable creates a table of n rows with keys 1..n and a NULL column
// "filled" to backfill with id*2.
func itemsTable(t testing.TB, db storage.Querier, name string, n int) {
	t.Helper()
	ctx := context.Background()
	table := pgx.Identifier{name}.Sanitize()
	_, err := db.Exec(ctx, `CREATE TABLE `+table+` (id bigint PRIMARY KEY, payload text NOT NULL, filled bigint)`)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `INSERT INTO `+table+` (id, payload) SELECT g, md5(g::text) FROM generate_series(1, $1::bigint) g`, n)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `ANALYZE `+table)
	require.NoError(t, err)
}

// fillWork sets filled = id*2 on the batch: idempotent, since it writes a
// value computed from the row.
func fillWork(name string) bbm.Work {
	return bbm.WorkFunc(name, func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET filled = `+b.QuotedKey()+` * 2 WHERE `+cond, args...)
		return err
	})
}

// fillWorker is a SyncWorker on pool with fillWork registered as "fill".
func fillWorker(t testing.TB, pool storage.Handle, opts bbm.Options) *bbm.SyncWorker {
	t.Helper()
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(fillWork("fill")))
	return w
}

func countWhere(t testing.TB, db storage.Querier, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

// requireFilled checks that every row of table has filled = id*2.
func requireFilled(t testing.TB, db storage.Querier, table string) {
	t.Helper()
	bad := countWhere(t, db, `SELECT count(*) FROM `+table+` WHERE filled IS DISTINCT FROM id * 2`)
	require.Zero(t, bad, "rows of %s not filled", table)
}

// events records observer calls.
type events struct {
	mu        sync.Mutex
	started   []bbm.JobStartEvent
	finished  []bbm.JobEvent
	throttled []bbm.ThrottleEvent
	done      []*bbm.Migration
}

func (e *events) observer() bbm.Observer {
	return bbm.ObserverFuncs{
		OnJobStart: func(ctx context.Context, ev bbm.JobStartEvent) context.Context {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.started = append(e.started, ev)
			return ctx
		},
		OnJobEnd: func(_ context.Context, ev bbm.JobEvent) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.finished = append(e.finished, ev)
		},
		OnThrottled: func(_ context.Context, ev bbm.ThrottleEvent) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.throttled = append(e.throttled, ev)
		},
		OnMigrationEnded: func(_ context.Context, m *bbm.Migration) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.done = append(e.done, m)
		},
	}
}

func (e *events) failures() []bbm.JobEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []bbm.JobEvent
	for _, ev := range e.finished {
		if ev.Err != nil {
			out = append(out, ev)
		}
	}
	return out
}

// pgSetup is a migrated database behind a pool.
func pgSetup(t testing.TB) storage.Handle {
	t.Helper()
	return storagetest.Handle(t, storagetest.KindPool)
}

// pgSetupURL is pgSetup that also returns the database's URL, for tests
// that open more connections to it.
func pgSetupURL(t testing.TB) (storage.Handle, string) {
	t.Helper()
	url := storagetest.URL(t)
	return storagetest.OpenHandle(t, storagetest.KindPool, url), url
}

// keyInt is a single integer Key's value.
func keyInt(k bbm.Key) int64 {
	n, _ := k.Int()
	return n
}

// claimRange claims [lo, hi] of m as a new job after its last job, as a
// worker would.
func claimRange(t testing.TB, store bbm.Store, m *bbm.Migration, lo, hi int64, lease time.Duration) *bbm.Job {
	t.Helper()
	ctx := context.Background()
	last, err := store.LastJob(ctx, m.ID)
	require.NoError(t, err)
	var after bbm.Key
	if last != nil {
		after = last.End
	}
	j, err := store.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, After: after, Start: bbm.IntKey(lo), End: bbm.IntKey(hi),
		BatchSize: int(hi - lo + 1), Rows: int(hi - lo + 1), Lease: lease})
	require.NoError(t, err)
	return j
}

// countedTable creates table counted with keys 1..n and a counter n at 0,
// for non-idempotent Work (n = n + 1) that shows a row applied twice.
func countedTable(t testing.TB, db storage.Querier, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Exec(ctx, `CREATE TABLE counted (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)`)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `INSERT INTO counted (id) SELECT generate_series(1, $1::bigint)`, n)
	require.NoError(t, err)
}

// childPool is the pool of a child process re-executing the test binary,
// on the database its parent put in the environment variable env; the test
// is skipped in a normal run, where env is unset.
func childPool(t *testing.T, env string) storage.Handle {
	t.Helper()
	url := os.Getenv(env)
	if url == "" {
		t.Skip("only runs as a child process")
	}
	return storage.FromPool(newPool(t, url))
}
