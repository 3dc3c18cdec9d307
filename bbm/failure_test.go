package bbm_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
)

func pgStore(pool storage.Handle) *bbm.PostgresStore {
	return bbm.NewPostgresStore(pool, bbm.PostgresStoreOptions{})
}

func jobsOf(t *testing.T, pool storage.Handle, name string) []*bbm.Job {
	t.Helper()
	ctx := context.Background()
	m, err := pgStore(pool).MigrationByName(ctx, name)
	require.NoError(t, err)
	jobs, err := pgStore(pool).Jobs(ctx, m.ID)
	require.NoError(t, err)
	return jobs
}

func migrationOf(t *testing.T, pool storage.Handle, name string) *bbm.Migration {
	t.Helper()
	m, err := pgStore(pool).MigrationByName(context.Background(), name)
	require.NoError(t, err)
	return m
}

func register(t *testing.T, a *bbm.Admin, name, table, work string, batch int) {
	t.Helper()
	_, err := a.Register(context.Background(), bbm.Definition{Name: name, Table: table, Column: "id", Work: work, BatchSize: batch})
	require.NoError(t, err)
}

// A Work that panics is recovered: the attempt fails with ErrWorkPanic and
// the job is retried; a Work that always panics fails its migration after
// exactly MaxJobAttempts attempts, and the worker goes on with the others.
func TestWorkPanicIsRecovered(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "flaky", 500)
	itemsTable(t, pool, "poison", 500)
	itemsTable(t, pool, "fine", 500)
	var ev events
	opts := fastOptions()
	opts.MaxJobAttempts = 3
	opts.Observer = ev.observer()
	w := bbm.NewSyncWorker(pool, opts)
	var flakyPanics atomic.Int32
	fill := fillWork("fill")
	require.NoError(t, w.Register(fill,
		bbm.WorkFunc("flaky", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
			if keyInt(b.Start) <= 250 && keyInt(b.End) >= 250 && flakyPanics.Add(1) <= 2 {
				panic("flaky bug")
			}
			return fill.Do(ctx, db, b)
		}),
		bbm.WorkFunc("poison", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
			if err := fill.Do(ctx, db, b); err != nil {
				return err
			}
			if keyInt(b.Start) <= 250 && keyInt(b.End) >= 250 {
				var m map[string]int
				m["boom"]++ // a real runtime panic, after writing
			}
			return nil
		})))
	a := w.Admin()
	register(t, a, "flaky", "flaky", "flaky", 100)
	// FailFast: the last attempt fails the migration at once.
	_, err := a.Register(ctx, bbm.Definition{Name: "poison", Table: "poison", Column: "id", Work: "poison", BatchSize: 100,
		OnFailure: bbm.FailFast})
	require.NoError(t, err)
	register(t, a, "fine", "fine", "fill", 100)

	err = w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.ErrorIs(t, err, bbm.ErrMaxJobAttempts)
	require.ErrorContains(t, err, `"poison"`)
	require.NotContains(t, err.Error(), `"flaky"`)

	requireFilled(t, pool, "flaky")
	requireFilled(t, pool, "fine")
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "flaky").Status)
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "fine").Status)
	poison := migrationOf(t, pool, "poison")
	require.Equal(t, bbm.StatusFailed, poison.Status)
	require.Equal(t, bbm.CodeMaxJobAttemptsReached, poison.ErrorCode)
	require.Contains(t, poison.ErrorMessage, "assignment to entry in nil map")
	// The poison range's writes were rolled back with each attempt.
	require.Equal(t, 100, countWhere(t, pool, `SELECT count(*) FROM poison WHERE id BETWEEN 201 AND 300 AND filled IS NULL`))

	for _, j := range jobsOf(t, pool, "poison") {
		if keyInt(j.Start) == 201 {
			require.Equal(t, bbm.JobFailed, j.Status)
			require.Equal(t, 3, j.Attempts, "a poison job gets exactly MaxJobAttempts attempts")
			require.Equal(t, bbm.CodeJobPanicked, j.ErrorCode)
		}
	}
	for _, j := range jobsOf(t, pool, "flaky") {
		want := 1
		if keyInt(j.Start) == 201 {
			want = 3
		}
		require.Equal(t, want, j.Attempts, "job %s", j.Start)
	}
	fails := ev.failures()
	require.Len(t, fails, 5) // 2 flaky + 3 poison
	for _, f := range fails {
		require.ErrorIs(t, f.Err, bbm.ErrWorkPanic)
		var je *bbm.JobError
		require.ErrorAs(t, f.Err, &je)
		var pe *bbm.PanicError
		require.ErrorAs(t, f.Err, &pe)
		require.NotEmpty(t, pe.Stack)
	}
	require.True(t, errors.Is(fails[4].Err, bbm.ErrMaxJobAttempts), "the last poison attempt is terminal")

	// Fixed and retried, the migration finishes.
	require.NoError(t, w.Register(bbm.WorkFunc("poison2", fill.Do)))
	_, err = pool.Exec(ctx, `UPDATE ferry_bbm_migrations SET work_name = 'poison2' WHERE name = 'poison'`)
	require.NoError(t, err)
	_, err = a.RetryFailed(ctx, "poison")
	require.NoError(t, err)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, pool, "poison")
}

// A Work that hangs is cancelled at the job timeout, and the attempt counts.
func TestWorkHangingPastJobTimeout(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "sleepy", 100)
	itemsTable(t, pool, "blocked", 100)
	opts := fastOptions()
	opts.JobTimeout = 200 * time.Millisecond
	opts.MaxJobAttempts = 2
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(
		bbm.WorkFunc("sleep_in_db", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
			_, err := db.Exec(ctx, `SELECT pg_sleep(30)`)
			return err
		}),
		bbm.WorkFunc("wait_for_ctx", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
			<-ctx.Done()
			return ctx.Err()
		})))
	register(t, w.Admin(), "sleepy", "sleepy", "sleep_in_db", 100)
	register(t, w.Admin(), "blocked", "blocked", "wait_for_ctx", 100)
	start := time.Now()
	err := w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.Less(t, time.Since(start), 20*time.Second, "the hanging work was not cancelled")
	for _, name := range []string{"sleepy", "blocked"} {
		m := migrationOf(t, pool, name)
		require.Equal(t, bbm.StatusFailed, m.Status, name)
		require.Equal(t, bbm.CodeMaxJobAttemptsReached, m.ErrorCode, name)
		jobs := jobsOf(t, pool, name)
		require.Len(t, jobs, 1)
		require.Equal(t, 2, jobs[0].Attempts, name)
		require.Equal(t, bbm.CodeJobTimeout, jobs[0].ErrorCode, name)
		require.Contains(t, jobs[0].ErrorMessage, "timed out", name)
	}
	// No backend is left sleeping.
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'`))
}

// The attempt is durable before the Work runs, and a failure is recorded
// although the Work's transaction rolled back.
func TestAttemptCountedBeforeAndFailureRecordedAfterRollback(t *testing.T) {
	ctx := context.Background()
	pool, url := pgSetupURL(t)
	itemsTable(t, pool, "items", 100)
	other := newPool(t, url)
	opts := fastOptions()
	opts.MaxJobAttempts = 2
	w := bbm.NewSyncWorker(pool, opts)
	type seen struct {
		status   string
		attempts int
	}
	var during []seen
	require.NoError(t, w.Register(bbm.WorkFunc("fail_after_write", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		var s seen
		// Another connection sees the claim: it was committed before Do.
		if err := other.QueryRow(ctx, `SELECT status, attempts FROM ferry_bbm_jobs WHERE start_key = $1`, []string(b.Start)).Scan(&s.status, &s.attempts); err != nil {
			return err
		}
		during = append(during, s)
		cond, args := b.Where(1)
		if _, err := db.Exec(ctx, `UPDATE items SET filled = -1 WHERE `+cond, args...); err != nil {
			return err
		}
		return errors.New("validation failed after writing")
	})))
	register(t, w.Admin(), "m", "items", "fail_after_write", 100)
	require.ErrorIs(t, w.Run(ctx), bbm.ErrMigrationFailed)
	require.Equal(t, []seen{{"running", 1}, {"running", 2}}, during)
	require.Equal(t, 100, countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NULL`), "the Work's writes were not rolled back")
	jobs := jobsOf(t, pool, "m")
	require.Len(t, jobs, 1)
	require.Equal(t, bbm.JobFailed, jobs[0].Status)
	require.Equal(t, 2, jobs[0].Attempts)
	require.Equal(t, bbm.CodeJobFailed, jobs[0].ErrorCode)
	require.Contains(t, jobs[0].ErrorMessage, "validation failed after writing")
}

// A migration whose Work the running worker lacks (another service, or
// another version of this one, runs it) is left alone and reported, not
// failed; the worker's own migrations go on, and Run ends.
func TestUnknownWorkIsLeftAlone(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "a", 100)
	itemsTable(t, pool, "b", 100)
	registrar := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, registrar.Register(fillWork("fill"), fillWork("only_elsewhere")))
	register(t, registrar.Admin(), "a", "a", "only_elsewhere", 50)
	register(t, registrar.Admin(), "b", "b", "fill", 50)

	w := fillWorker(t, pool, fastOptions())
	require.NoError(t, w.Run(ctx))
	require.Equal(t, []string{"a"}, w.LeftAlone())
	m := migrationOf(t, pool, "a")
	require.Equal(t, bbm.StatusActive, m.Status)
	require.Empty(t, jobsOf(t, pool, "a"))
	requireFilled(t, pool, "b")
	require.ErrorIs(t, w.RunMigrations(ctx, "a"), bbm.ErrUnknownWork)

	// A worker that has the Work runs it.
	require.NoError(t, registrar.Run(ctx))
	requireFilled(t, pool, "a")
}

// A table or column dropped after registration fails the migration with the
// matching code instead of burning attempts.
func TestTargetDroppedAfterRegistration(t *testing.T) {
	ctx := context.Background()
	pool := pgSetup(t)
	itemsTable(t, pool, "gone", 100)
	itemsTable(t, pool, "nocol", 100)
	w := fillWorker(t, pool, fastOptions())
	register(t, w.Admin(), "gone", "gone", "fill", 50)
	register(t, w.Admin(), "nocol", "nocol", "fill", 50)
	_, err := pool.Exec(ctx, `DROP TABLE gone; ALTER TABLE nocol DROP COLUMN filled`)
	require.NoError(t, err)
	err = w.Run(ctx)
	require.ErrorIs(t, err, bbm.ErrInvalidTable)
	require.ErrorIs(t, err, bbm.ErrInvalidColumn)
	for name, code := range map[string]bbm.ErrorCode{"gone": bbm.CodeInvalidTable, "nocol": bbm.CodeInvalidColumn} {
		m := migrationOf(t, pool, name)
		require.Equal(t, bbm.StatusFailed, m.Status)
		require.Equal(t, code, m.ErrorCode)
	}
	require.Empty(t, jobsOf(t, pool, "gone"), "cutting the first range found the table gone")
	require.Equal(t, 1, jobsOf(t, pool, "nocol")[0].Attempts)
}
