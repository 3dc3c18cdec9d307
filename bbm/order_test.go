package bbm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// recorder is a Work that fills and records which batches it ran.
type recorder struct {
	mu   sync.Mutex
	runs []string
}

func (r *recorder) work(name string) bbm.Work {
	fill := fillWork(name)
	return bbm.WorkFunc(name, func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		r.mu.Lock()
		r.runs = append(r.runs, fmt.Sprintf("%s:%s", b.Migration, b.Start))
		r.mu.Unlock()
		return fill.Do(ctx, db, b)
	})
}

// The seed's ordering: failed migrations first, then running before
// active; in a migration, new ranges before failed jobs (FinishOthers). A migration failed
// for a reason that retrying cannot fix is left alone.
func TestFindJobOrder(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	store := pgStore(pool)
	for _, n := range []string{"ta", "tb", "tc", "td"} {
		itemsTable(t, pool, n, 300)
	}
	var rec recorder
	opts := fastOptions()
	opts.MaxJobAttempts = 3
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(rec.work("rec")))
	a := w.Admin()
	register(t, a, "A", "ta", "rec", 100) // active
	register(t, a, "B", "tb", "rec", 100) // running, with a failed job
	register(t, a, "C", "tc", "rec", 100) // failed: max attempts (of a stricter worker)
	register(t, a, "D", "td", "rec", 100) // failed: invalid table
	lease := time.Minute
	b, c, d := migrationOf(t, pool, "B"), migrationOf(t, pool, "C"), migrationOf(t, pool, "D")
	j := claimRange(t, store, b, 1, 100, lease)
	_, err := store.FinishJob(ctx, nil, bbm.JobResult{JobID: j.ID, Attempt: 1})
	require.NoError(t, err)
	j = claimRange(t, store, b, 101, 200, lease)
	_, err = store.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobFailed, Message: "x"})
	require.NoError(t, err)
	j = claimRange(t, store, c, 1, 100, lease)
	_, err = store.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobFailed, Message: "x",
		MigrationCode: bbm.CodeMaxJobAttemptsReached})
	require.NoError(t, err)
	_, err = store.SetMigrationStatus(ctx, d.ID, bbm.StatusChange{To: bbm.StatusFailed, Code: bbm.CodeInvalidTable, Message: "x"})
	require.NoError(t, err)

	// Run's error names only the migrations it dealt with: D failed
	// before and stays failed, left out.
	require.NoError(t, w.Run(ctx))
	require.Equal(t, []string{
		"C:1",            // the failed migration's failed job
		"B:201", "B:101", // running: new ranges first, then the failed job (FinishOthers)
		"C:101", "C:201", // running again since its retry
		"A:1", "A:101", "A:201", // active last
	}, rec.runs)
	require.Equal(t, 3, w.FinishedMigrationCount())
	require.Equal(t, bbm.StatusFailed, migrationOf(t, pool, "D").Status)
}

// A job whose worker died (it stays running with a lease) is taken over
// once the lease expires, and counts the attempt it lost.
func TestDeadWorkersJobIsTakenOver(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	w := fillWorker(t, pool, fastOptions())
	register(t, w.Admin(), "m", "items", "fill", 100)
	m := migrationOf(t, pool, "m")
	// What a worker killed during its first job leaves behind.
	claimRange(t, pgStore(pool), m, 1, 100, 300*time.Millisecond)

	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	jobs := jobsOf(t, pool, "m")
	require.Len(t, jobs, 3)
	require.Equal(t, 2, jobs[0].Attempts)
	for _, j := range jobs {
		require.Equal(t, bbm.JobFinished, j.Status)
	}
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "m").Status)
}

// Attempts lost with dead workers count too: a job that kills its worker
// every time cannot loop forever.
func TestJobThatKeepsKillingWorkersFailsMigration(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 100)
	opts := fastOptions()
	opts.MaxJobAttempts = 2
	w := fillWorker(t, pool, opts)
	register(t, w.Admin(), "m", "items", "fill", 100)
	store := pgStore(pool)
	m := migrationOf(t, pool, "m")
	j := claimRange(t, store, m, 1, 100, time.Millisecond)
	require.Eventually(t, func() bool {
		reaped, err := store.ReapExpiredJobs(ctx, 2)
		require.NoError(t, err)
		return len(reaped) == 1
	}, 10*time.Second, 5*time.Millisecond)
	_, err := store.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 1, Lease: time.Millisecond})
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)

	err = w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.ErrorIs(t, err, bbm.ErrMaxJobAttempts)
	got := jobsOf(t, pool, "m")
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].Attempts)
	require.Equal(t, bbm.CodeJobAbandoned, got[0].ErrorCode)
	require.Equal(t, 100, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`))
}

// finishFailsOnce is a Store whose first FinishJob is lost, as when a worker
// dies right after its Work committed.
type finishFailsOnce struct {
	bbm.Store
	done atomic.Bool
}

func (s *finishFailsOnce) FinishJob(ctx context.Context, tx pgx.Tx, r bbm.JobResult) (*bbm.Job, error) {
	if s.done.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("connection reset")
	}
	return s.Store.FinishJob(ctx, tx, r)
}

// At-least-once Work is idempotent: a range whose work committed but whose
// job was not marked finished runs again once the lease expires, with the
// same result.
func TestAtLeastOnceUnrecordedJobRunsAgain(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	var rec recorder
	opts := fastOptions()
	opts.Store = &finishFailsOnce{Store: pgStore(pool)}
	opts.JobTimeout, opts.JobLease = 300*time.Millisecond, 300*time.Millisecond
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(bbm.WithDelivery(rec.work("fill"), bbm.DeliveryAtLeastOnce)))
	register(t, w.Admin(), "m", "items", "fill", 100)

	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	require.Equal(t, []string{"m:1", "m:101", "m:201", "m:1"}, rec.runs, "the unrecorded range ran again once its lease expired")
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "m").Status)
}

// Exactly-once Work: when recording the job fails, the Work's changes roll
// back with it, the attempt fails and is retried, and the range is applied
// once.
func TestExactlyOnceUnrecordedJobRollsBack(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	var rec recorder
	opts := fastOptions()
	opts.Store = &finishFailsOnce{Store: pgStore(pool)}
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(rec.work("fill")))
	register(t, w.Admin(), "m", "items", "fill", 100)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	require.Equal(t, []string{"m:1", "m:101", "m:201", "m:1"}, rec.runs, "the unrecorded attempt was retried after the other ranges")
	jobs := jobsOf(t, pool, "m")
	require.Equal(t, 2, jobs[0].Attempts)
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "m").Status)
}

// Exactly-once Work needs the job tables in its database: a worker on a
// database with a Store elsewhere fails the migration saying so, and
// nothing of the Work is kept.
func TestExactlyOnceNeedsStoreInWorkDatabase(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 100)
	opts := fastOptions()
	opts.Store = bbmtest.NewStore(bbmtest.StoreOptions{})
	w := fillWorker(t, pool, opts)
	register(t, w.Admin(), "m", "items", "fill", 50)
	err := w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.ErrorIs(t, err, bbm.ErrNotTransactional)
	require.Equal(t, 100, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`))
}

// A Work whose delivery is not one of the two is refused at Register.
func TestRegisterRefusesUnknownDelivery(t *testing.T) {
	w := bbm.NewSyncWorker(nil, bbm.Options{})
	noop := bbm.WorkFunc("noop", func(context.Context, storage.Querier, bbm.Batch) error { return nil })
	require.ErrorIs(t, w.Register(bbm.WithDelivery(noop, "sometimes")), bbm.ErrInvalidWork)
	require.Equal(t, bbm.DeliveryExactlyOnce, bbm.DeliveryOf(noop))
	require.Equal(t, bbm.DeliveryAtLeastOnce, bbm.DeliveryOf(bbm.WithDelivery(noop, bbm.DeliveryAtLeastOnce)))
}

// NullKeys batches the NULL rows through the partial index and refuses to
// go on when the index is dropped.
func TestNullKeysStrategy(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 1000)
	itemsTable(t, pool, "noidx", 100)
	_, err := pool.Exec(ctx, `UPDATE items SET filled = id * 2 WHERE id % 3 = 0;
		CREATE INDEX items_unfilled ON items (id) WHERE filled IS NULL;
		CREATE INDEX noidx_unfilled ON noidx (id) WHERE filled IS NULL`)
	require.NoError(t, err)
	var batches []bbm.Batch
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(bbm.WorkFunc("fill_nulls", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		batches = append(batches, b)
		cond, args := b.Where(1)
		_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET `+b.QuotedColumn()+` = `+b.QuotedKey()+` * 2
			WHERE `+cond, args...)
		return err
	})))
	m, err := w.Admin().Register(ctx, bbm.Definition{Name: "nulls", Table: "items", Column: "filled", Work: "fill_nulls",
		BatchSize: 100, Strategy: bbm.NullKeys})
	require.NoError(t, err)
	require.Equal(t, []string{"id"}, m.KeyColumns)
	require.Equal(t, []bbm.Key{bbm.IntKey(1), bbm.IntKey(1000)}, []bbm.Key{m.Lower, m.Upper})
	_, err = w.Admin().Register(ctx, bbm.Definition{Name: "noidx", Table: "noidx", Column: "filled", Work: "fill_nulls",
		BatchSize: 10, Strategy: bbm.NullKeys})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DROP INDEX noidx_unfilled`)
	require.NoError(t, err)

	err = w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.ErrorIs(t, err, bbm.ErrInvalidStrategy)
	requireFilled(t, pool, "items")
	require.Len(t, batches, 7) // 667 NULL rows, 100 per job
	for i, b := range batches {
		require.Equal(t, "filled", b.Column)
		require.Equal(t, []string{"id"}, b.KeyColumns)
		require.Equal(t, bbm.NullKeys, b.Strategy)
		if i > 0 {
			require.Greater(t, keyInt(b.Start), keyInt(batches[i-1].End))
		}
	}
	nm := migrationOf(t, pool, "noidx")
	require.Equal(t, bbm.CodeInvalidBatchingStrategy, nm.ErrorCode)
	require.Contains(t, nm.ErrorMessage, "CREATE INDEX")
}

// The Throttler is asked before each job; the worker waits while it holds.
func TestThrottlerHoldsJobs(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 300)
	var ev events
	var calls atomic.Int32
	opts := fastOptions()
	opts.Observer = ev.observer()
	opts.Throttler = bbm.ThrottlerFunc(func(ctx context.Context) (bbm.Decision, error) {
		switch calls.Add(1) {
		case 1, 2:
			return bbm.Decision{Hold: true, Reason: "replica lag", RetryAfter: time.Millisecond}, nil
		case 3:
			return bbm.Decision{}, fmt.Errorf("cannot tell") // an error holds too
		}
		return bbm.Decision{}, nil
	})
	w := fillWorker(t, pool, opts)
	register(t, w.Admin(), "m", "items", "fill", 100)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "items")
	require.Len(t, ev.throttled, 3)
	require.Equal(t, "replica lag", ev.throttled[0].Reason)
	require.Equal(t, "cannot tell", ev.throttled[2].Reason)
	// Asked before every job (3 jobs) and once more before finding nothing.
	require.Equal(t, int32(3+3+1), calls.Load())
}

// Every job line carries migration, job, range and attempt; finished lines
// carry the duration.
func TestJobLogLines(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 200)
	var buf bytes.Buffer
	var mu sync.Mutex
	opts := fastOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
	w := fillWorker(t, pool, opts)
	register(t, w.Admin(), "m", "items", "fill", 100)
	require.NoError(t, w.Run(ctx))
	mu.Lock()
	defer mu.Unlock()
	var started, finished int
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		switch rec["msg"] {
		case "job started", "job finished":
			for _, k := range []string{"migration", "job", "start", "end", "attempt", "component"} {
				require.Contains(t, rec, k, line)
			}
			require.NotContains(t, line, `"job":0`)
			if rec["msg"] == "job finished" {
				require.Contains(t, rec, "duration", line)
				finished++
			} else {
				started++
			}
		}
	}
	require.Equal(t, 2, started)
	require.Equal(t, 2, finished)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// pauseAfterFind pauses the migration of each job it finds before the job
// is claimed, as an operator might.
type pauseAfterFind struct {
	bbm.Handler
	admin *bbm.Admin
}

func (h pauseAfterFind) FindJob(ctx context.Context, s bbm.Store) (*bbm.Job, error) {
	j, err := h.Handler.FindJob(ctx, s)
	if j != nil {
		if _, err := h.admin.Pause(ctx, j.Migration.Name); err != nil {
			return nil, err
		}
	}
	return j, err
}

// A migration paused between FindJob and the claim is skipped; Run ends.
func TestPausedBeforeClaimIsSkipped(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 100)
	opts := fastOptions()
	h := &pauseAfterFind{}
	opts.Handler = h
	w := bbm.NewSyncWorker(pool, opts)
	h.Handler, h.admin = w, w.Admin()
	require.NoError(t, w.Register(fillWork("fill")))
	register(t, w.Admin(), "m", "items", "fill", 50)
	require.NoError(t, w.Run(ctx))
	require.Equal(t, bbm.StatusPaused, migrationOf(t, pool, "m").Status)
	require.Empty(t, jobsOf(t, pool, "m"))
}

// A failed migration whose Work this worker lacks is not picked up (it
// could only fail again), so Run ends instead of spinning.
func TestFailedMigrationOfAnotherWorkerIsLeftAlone(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "items", 100)
	store := pgStore(pool)
	other := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, other.Register(fillWork("elsewhere")))
	register(t, other.Admin(), "m", "items", "elsewhere", 50)
	m := migrationOf(t, pool, "m")
	j := claimRange(t, store, m, 1, 50, time.Minute)
	_, err := store.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobFailed,
		MigrationCode: bbm.CodeMaxJobAttemptsReached})
	require.NoError(t, err)

	w := fillWorker(t, pool, fastOptions())
	require.NoError(t, w.Run(ctx), "a migration this worker cannot run is not its failure")
	got := jobsOf(t, pool, "m")
	require.Equal(t, 1, got[0].Attempts)
	require.Equal(t, bbm.CodeMaxJobAttemptsReached, migrationOf(t, pool, "m").ErrorCode)
}
