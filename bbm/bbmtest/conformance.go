package bbmtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bbm"
)

// TestStore runs the conformance suite every bbm.Store must pass. newStore
// returns an empty store for each subtest.
func TestStore(t *testing.T, newStore func(t *testing.T) bbm.Store) {
	t.Run("CreateAndGet", func(t *testing.T) { testCreateAndGet(t, newStore(t)) })
	t.Run("DuplicateName", func(t *testing.T) { testDuplicateName(t, newStore(t)) })
	t.Run("ListByStatus", func(t *testing.T) { testListByStatus(t, newStore(t)) })
	t.Run("StatusTransitions", func(t *testing.T) { testStatusTransitions(t, newStore(t)) })
	t.Run("ResumePaused", func(t *testing.T) { testResumePaused(t, newStore(t)) })
	t.Run("ClaimNewJobs", func(t *testing.T) { testClaimNewJobs(t, newStore(t)) })
	t.Run("ClaimNeedsRunnableMigration", func(t *testing.T) { testClaimNeedsRunnable(t, newStore(t)) })
	t.Run("FinishAndFailJobs", func(t *testing.T) { testFinishAndFail(t, newStore(t)) })
	t.Run("FailJobFailsMigration", func(t *testing.T) { testFailJobFailsMigration(t, newStore(t)) })
	t.Run("FinishMigration", func(t *testing.T) { testFinishMigration(t, newStore(t)) })
	t.Run("RetryMigration", func(t *testing.T) { testRetryMigration(t, newStore(t)) })
	t.Run("ReapExpiredJobs", func(t *testing.T) { testReap(t, newStore(t)) })
	t.Run("JobStats", func(t *testing.T) { testJobStats(t, newStore(t)) })
	t.Run("Lock", func(t *testing.T) { testLock(t, newStore(t)) })
	t.Run("RacingClaimsOneWins", func(t *testing.T) { testRacingClaims(t, newStore(t)) })
	t.Run("LongMessagesAreTruncated", func(t *testing.T) { testLongMessage(t, newStore(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, newStore(t)) })
}

// must turns a (value, error) result into the value, failing t on error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
}

func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

func newMigration(name string) *bbm.Migration {
	return &bbm.Migration{Name: name, Schema: "public", Table: "items", Column: "id", KeyColumn: "id",
		MinKey: 1, MaxKey: 100, BatchSize: 10, WorkName: "work"}
}

func create(t *testing.T, s bbm.Store, name string) *bbm.Migration {
	t.Helper()
	m := newMigration(name)
	if err := s.CreateMigration(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

const lease = time.Minute

func claimNew(t *testing.T, s bbm.Store, m *bbm.Migration, lo, hi int64) *bbm.Job {
	t.Helper()
	return must(s.ClaimJob(context.Background(), bbm.Claim{MigrationID: m.ID, MinKey: lo, MaxKey: hi,
		BatchSize: int(hi - lo + 1), Lease: lease}))(t)
}

func fail(t *testing.T, s bbm.Store, j *bbm.Job, code bbm.ErrorCode) *bbm.Job {
	t.Helper()
	return must(s.FailJob(context.Background(), bbm.JobFailure{JobID: j.ID, Attempt: j.Attempts,
		Duration: time.Millisecond, Code: code, Message: "boom"}))(t)
}

func finish(t *testing.T, s bbm.Store, j *bbm.Job) *bbm.Job {
	t.Helper()
	return must(s.FinishJob(context.Background(), nil, bbm.JobResult{JobID: j.ID, Attempt: j.Attempts, Duration: time.Millisecond}))(t)
}

func testCreateAndGet(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "fill_a")
	check(t, m.ID > 0, "ID = %d, want > 0", m.ID)
	check(t, m.Status == bbm.StatusActive, "default status = %q, want active", m.Status)
	check(t, m.Strategy == bbm.IntegerRange, "default strategy = %q, want integer_range", m.Strategy)
	check(t, !m.CreatedAt.IsZero() && !m.UpdatedAt.IsZero(), "timestamps not set: %+v", m)
	check(t, m.StartedAt.IsZero() && m.FinishedAt.IsZero(), "started/finished set on a new migration: %+v", m)

	byID := must(s.Migration(ctx, m.ID))(t)
	byName := must(s.MigrationByName(ctx, "fill_a"))(t)
	for _, got := range []*bbm.Migration{byID, byName} {
		check(t, got.Name == m.Name && got.Schema == "public" && got.Table == "items" && got.Column == "id" &&
			got.KeyColumn == "id" && got.MinKey == 1 && got.MaxKey == 100 && got.BatchSize == 10 &&
			got.WorkName == "work" && got.CreatedAt.Equal(m.CreatedAt), "read back %+v, stored %+v", got, m)
	}
	_, err := s.Migration(ctx, m.ID+1000)
	wantErr(t, err, bbm.ErrMigrationNotFound)
	_, err = s.MigrationByName(ctx, "nope")
	wantErr(t, err, bbm.ErrMigrationNotFound)

	f := newMigration("born_finished")
	f.Status = bbm.StatusFinished
	must(0, s.CreateMigration(ctx, f))(t)
	check(t, !f.FinishedAt.IsZero(), "a migration created finished has no FinishedAt")
}

func testDuplicateName(t *testing.T, s bbm.Store) {
	create(t, s, "dup")
	err := s.CreateMigration(context.Background(), newMigration("dup"))
	wantErr(t, err, bbm.ErrDuplicateMigration)
	check(t, strings.Contains(err.Error(), "dup"), "error %q does not name the migration", err)
	ms := must(s.Migrations(context.Background()))(t)
	check(t, len(ms) == 1, "%d migrations after a duplicate, want 1", len(ms))
}

func testListByStatus(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	a := create(t, s, "a")
	b := newMigration("b")
	b.Status = bbm.StatusPaused
	must(0, s.CreateMigration(ctx, b))(t)
	c := create(t, s, "c")
	all := must(s.Migrations(ctx))(t)
	check(t, len(all) == 3 && all[0].ID == a.ID && all[1].ID == b.ID && all[2].ID == c.ID, "all = %v, want a, b, c by ID", names(all))
	active := must(s.Migrations(ctx, bbm.StatusActive))(t)
	check(t, len(active) == 2 && active[0].Name == "a" && active[1].Name == "c", "active = %v", names(active))
	both := must(s.Migrations(ctx, bbm.StatusPaused, bbm.StatusActive))(t)
	check(t, len(both) == 3, "paused+active = %v", names(both))
	none := must(s.Migrations(ctx, bbm.StatusFailed))(t)
	check(t, len(none) == 0, "failed = %v", names(none))
}

func names(ms []*bbm.Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func testStatusTransitions(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	run := must(s.SetMigrationStatus(ctx, m.ID, bbm.StatusChange{To: bbm.StatusRunning, From: []bbm.Status{bbm.StatusActive}}))(t)
	check(t, run.Status == bbm.StatusRunning && !run.StartedAt.IsZero(), "after start: %+v", run)
	_, err := s.SetMigrationStatus(ctx, m.ID, bbm.StatusChange{To: bbm.StatusPaused, From: []bbm.Status{bbm.StatusActive}})
	wantErr(t, err, bbm.ErrInvalidTransition)
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusRunning, "a refused transition changed the status to %s", got.Status)

	failed := must(s.SetMigrationStatus(ctx, m.ID, bbm.StatusChange{To: bbm.StatusFailed, Code: bbm.CodeInvalidTable, Message: "gone"}))(t)
	check(t, failed.ErrorCode == bbm.CodeInvalidTable && failed.ErrorMessage == "gone", "failure not recorded: %+v", failed)
	again := must(s.SetMigrationStatus(ctx, m.ID, bbm.StatusChange{To: bbm.StatusRunning}))(t)
	check(t, again.ErrorCode == bbm.CodeNone && again.ErrorMessage == "", "error not cleared: %+v", again)
	check(t, again.StartedAt.Equal(run.StartedAt), "StartedAt moved from %v to %v", run.StartedAt, again.StartedAt)
	done := must(s.SetMigrationStatus(ctx, m.ID, bbm.StatusChange{To: bbm.StatusFinished}))(t)
	check(t, !done.FinishedAt.IsZero(), "FinishedAt not set")

	_, err = s.SetMigrationStatus(ctx, m.ID+1000, bbm.StatusChange{To: bbm.StatusPaused})
	wantErr(t, err, bbm.ErrMigrationNotFound)
	_, err = s.SetMigrationStatus(ctx, m.ID, bbm.StatusChange{To: "bogus"})
	wantErr(t, err, bbm.ErrInvalidTransition)
}

func testResumePaused(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	for _, n := range []string{"p1", "p2"} {
		m := newMigration(n)
		m.Status = bbm.StatusPaused
		must(0, s.CreateMigration(ctx, m))(t)
	}
	create(t, s, "a")
	check(t, must(s.ResumePaused(ctx))(t) == 2, "resumed count")
	check(t, must(s.ResumePaused(ctx))(t) == 0, "second resume moved something")
	active := must(s.Migrations(ctx, bbm.StatusActive))(t)
	check(t, len(active) == 3, "active after resume = %v", names(active))
}

func testClaimNewJobs(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	check(t, must(s.LastJob(ctx, m.ID))(t) == nil, "LastJob of a migration without jobs is not nil")
	j := claimNew(t, s, m, 1, 10)
	check(t, j.ID > 0 && j.MigrationID == m.ID && j.MinKey == 1 && j.MaxKey == 10 && j.BatchSize == 10,
		"claimed %+v", j)
	check(t, j.Status == bbm.JobRunning && j.Attempts == 1, "a new claim is %s with %d attempts, want running with 1", j.Status, j.Attempts)
	check(t, j.LeaseExpiresAt.After(j.StartedAt), "lease %v not after start %v", j.LeaseExpiresAt, j.StartedAt)
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusRunning && !got.StartedAt.IsZero(), "migration after the first claim: %+v", got)

	for _, r := range [][2]int64{{5, 15}, {10, 12}, {1, 10}, {-5, 3}} {
		_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: r[0], MaxKey: r[1], BatchSize: 5, Lease: lease})
		wantErr(t, err, bbm.ErrJobConflict)
	}
	_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 30, MaxKey: 20, BatchSize: 5, Lease: lease})
	check(t, err != nil, "a reversed range was claimed")
	_, err = s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 40, MaxKey: 50, BatchSize: 5})
	check(t, err != nil, "a claim without a lease was accepted")

	k := claimNew(t, s, m, 11, 20)
	last := must(s.LastJob(ctx, m.ID))(t)
	check(t, last.ID == k.ID, "LastJob = %d, want %d", last.ID, k.ID)
	un := must(s.UnfinishedJobs(ctx, m.ID))(t)
	check(t, len(un) == 2 && un[0].ID == j.ID && un[1].ID == k.ID, "unfinished = %+v", un)
}

func testClaimNeedsRunnable(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	for _, st := range []bbm.Status{bbm.StatusPaused, bbm.StatusFinished} {
		m := newMigration("m_" + string(st))
		m.Status = st
		must(0, s.CreateMigration(ctx, m))(t)
		_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 1, MaxKey: 10, BatchSize: 10, Lease: lease})
		wantErr(t, err, bbm.ErrInvalidTransition)
		check(t, len(must(s.Jobs(ctx, m.ID))(t)) == 0, "a refused claim left a job")
	}
	_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: 987654, MinKey: 1, MaxKey: 10, BatchSize: 10, Lease: lease})
	wantErr(t, err, bbm.ErrMigrationNotFound)
}

func testFinishAndFail(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	j := claimNew(t, s, m, 1, 10)
	_, err := s.FinishJob(ctx, nil, bbm.JobResult{JobID: j.ID, Attempt: j.Attempts + 1})
	wantErr(t, err, bbm.ErrJobLost)

	f := fail(t, s, j, bbm.CodeJobFailed)
	check(t, f.Status == bbm.JobFailed && f.ErrorCode == bbm.CodeJobFailed && f.ErrorMessage == "boom" &&
		f.Attempts == 1 && f.Duration == time.Millisecond && f.LeaseExpiresAt.IsZero(), "failed job: %+v", f)
	_, err = s.FinishJob(ctx, nil, bbm.JobResult{JobID: j.ID, Attempt: 1})
	wantErr(t, err, bbm.ErrJobLost)
	_, err = s.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobFailed})
	wantErr(t, err, bbm.ErrJobLost)

	_, err = s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 0, Lease: lease})
	wantErr(t, err, bbm.ErrJobConflict)
	r := must(s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 1, Lease: lease}))(t)
	check(t, r.Status == bbm.JobRunning && r.Attempts == 2 && r.ErrorCode == bbm.CodeNone && r.MinKey == 1 && r.MaxKey == 10,
		"retried job: %+v", r)

	refunded := must(s.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 2, Code: bbm.CodeJobCancelled, Refund: true}))(t)
	check(t, refunded.Attempts == 1 && refunded.ErrorCode == bbm.CodeJobCancelled, "refunded job: %+v", refunded)
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusRunning, "a job failure without MigrationCode changed the migration to %s", got.Status)

	r = must(s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 1, Lease: lease}))(t)
	done := finish(t, s, r)
	check(t, done.Status == bbm.JobFinished && !done.FinishedAt.IsZero() && done.Attempts == 2 && done.ErrorCode == bbm.CodeNone,
		"finished job: %+v", done)
	_, err = s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 2, Lease: lease})
	wantErr(t, err, bbm.ErrJobConflict)
}

func testFailJobFailsMigration(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	j := claimNew(t, s, m, 1, 10)
	must(s.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobPanicked, Message: "last try",
		MigrationCode: bbm.CodeMaxJobAttemptsReached}))(t)
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusFailed && got.ErrorCode == bbm.CodeMaxJobAttemptsReached && got.ErrorMessage == "last try",
		"migration after a terminal job failure: %+v", got)

	// A failed migration's job can be claimed again (by a worker with more
	// attempts): that puts the migration back to running, error cleared.
	r := must(s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 1, Lease: lease}))(t)
	check(t, r.Attempts == 2, "attempts = %d", r.Attempts)
	got = must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusRunning && got.ErrorCode == bbm.CodeNone, "migration after reclaim: %+v", got)
}

func testFinishMigration(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	check(t, must(s.FinishMigration(ctx, m.ID))(t), "an active migration without jobs did not finish")
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusFinished && !got.FinishedAt.IsZero(), "after finish: %+v", got)
	check(t, !must(s.FinishMigration(ctx, m.ID))(t), "finished twice")

	n := create(t, s, "n")
	j := claimNew(t, s, n, 1, 10)
	check(t, !must(s.FinishMigration(ctx, n.ID))(t), "finished with a running job")
	j = fail(t, s, j, bbm.CodeJobFailed)
	check(t, !must(s.FinishMigration(ctx, n.ID))(t), "finished with a failed job")
	j = must(s.ClaimJob(ctx, bbm.Claim{MigrationID: n.ID, JobID: j.ID, Attempts: j.Attempts, Lease: lease}))(t)
	finish(t, s, j)
	check(t, must(s.FinishMigration(ctx, n.ID))(t), "did not finish with all jobs finished")

	p := newMigration("p")
	p.Status = bbm.StatusPaused
	must(0, s.CreateMigration(ctx, p))(t)
	check(t, !must(s.FinishMigration(ctx, p.ID))(t), "a paused migration finished")
}

func testRetryMigration(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	_, err := s.RetryMigration(ctx, m.ID)
	wantErr(t, err, bbm.ErrInvalidTransition)
	a := claimNew(t, s, m, 1, 10)
	b := claimNew(t, s, m, 11, 20)
	finish(t, s, a)
	must(s.FailJob(ctx, bbm.JobFailure{JobID: b.ID, Attempt: 1, Code: bbm.CodeJobFailed, Message: "x",
		MigrationCode: bbm.CodeMaxJobAttemptsReached}))(t)
	r := must(s.RetryMigration(ctx, m.ID))(t)
	check(t, r.Status == bbm.StatusRunning && r.ErrorCode == bbm.CodeNone && r.ErrorMessage == "", "retried: %+v", r)
	jobs := must(s.Jobs(ctx, m.ID))(t)
	check(t, len(jobs) == 2 && jobs[0].Status == bbm.JobFinished && jobs[0].Attempts == 1 &&
		jobs[1].Status == bbm.JobFailed && jobs[1].Attempts == 0, "jobs after retry: %+v %+v", jobs[0], jobs[1])
	_, err = s.RetryMigration(ctx, m.ID+1000)
	wantErr(t, err, bbm.ErrMigrationNotFound)
}

func testReap(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	n := create(t, s, "n")
	short := must(s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 1, MaxKey: 10, BatchSize: 10, Lease: time.Millisecond}))(t)
	long := claimNew(t, s, m, 11, 20)
	last := must(s.ClaimJob(ctx, bbm.Claim{MigrationID: n.ID, MinKey: 1, MaxKey: 10, BatchSize: 10, Lease: time.Millisecond}))(t)
	time.Sleep(20 * time.Millisecond)

	reaped := must(s.ReapExpiredJobs(ctx, 1))(t)
	check(t, len(reaped) == 2, "reaped %d jobs, want the 2 with expired leases", len(reaped))
	for _, j := range reaped {
		check(t, (j.ID == short.ID || j.ID == last.ID) && j.Status == bbm.JobFailed && j.ErrorCode == bbm.CodeJobAbandoned &&
			j.Attempts == 1, "reaped %+v", j)
	}
	jobs := must(s.Jobs(ctx, m.ID))(t)
	check(t, jobs[1].ID == long.ID && jobs[1].Status == bbm.JobRunning, "the job with a live lease was reaped: %+v", jobs[1])
	// maxAttempts 1: both migrations used their last attempt.
	for _, id := range []int64{m.ID, n.ID} {
		got := must(s.Migration(ctx, id))(t)
		check(t, got.Status == bbm.StatusFailed && got.ErrorCode == bbm.CodeMaxJobAttemptsReached, "after reaping: %+v", got)
	}
	check(t, len(must(s.ReapExpiredJobs(ctx, 1))(t)) == 0, "reaped twice")

	o := create(t, s, "o")
	must(s.ClaimJob(ctx, bbm.Claim{MigrationID: o.ID, MinKey: 1, MaxKey: 10, BatchSize: 10, Lease: time.Millisecond}))(t)
	time.Sleep(20 * time.Millisecond)
	check(t, len(must(s.ReapExpiredJobs(ctx, 5))(t)) == 1, "not reaped")
	got := must(s.Migration(ctx, o.ID))(t)
	check(t, got.Status == bbm.StatusRunning, "reaping with attempts left failed the migration: %+v", got)
}

func testJobStats(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	st := must(s.JobStats(ctx, m.ID))(t)
	check(t, st == bbm.JobStats{}, "stats of no jobs: %+v", st)
	a := claimNew(t, s, m, 1, 10)
	b := claimNew(t, s, m, 11, 30)
	c := claimNew(t, s, m, 31, 40)
	claimNew(t, s, m, 41, 50)
	finish(t, s, a)
	finish(t, s, b)
	fail(t, s, c, bbm.CodeJobFailed)
	st = must(s.JobStats(ctx, m.ID))(t)
	check(t, st.Total == 4 && st.Finished == 2 && st.Failed == 1 && st.Running == 1 && st.KeysDone == 30,
		"stats: %+v", st)
	check(t, !st.FirstStarted.IsZero() && !st.LastFinished.Before(st.FirstStarted), "stats times: %+v", st)
}

func testLock(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	l := must(s.AcquireLock(ctx, 0))(t)
	check(t, l.Check(ctx) == nil, "a held lock fails Check")
	_, err := s.AcquireLock(ctx, 0)
	wantErr(t, err, bbm.ErrLockBusy)
	_, err = s.AcquireLock(ctx, 50*time.Millisecond)
	wantErr(t, err, bbm.ErrLockBusy)

	got := make(chan error, 1)
	go func() {
		l2, err := s.AcquireLock(ctx, 30*time.Second)
		if err == nil {
			err = l2.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	must(0, l.Release(ctx))(t)
	must(0, <-got)(t)
	must(0, l.Release(ctx))(t) // twice is fine
	wantErr(t, l.Check(ctx), bbm.ErrLockLost)

	l3 := must(s.AcquireLock(ctx, 0))(t)
	must(0, l3.Release(ctx))(t)
}

func testRacingClaims(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 1, MaxKey: 10, BatchSize: 10, Lease: lease})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantErr(t, err, bbm.ErrJobConflict)
		}
	}
	check(t, won == 1, "%d claims of one range won, want 1", won)

	j := must(s.Jobs(ctx, m.ID))(t)[0]
	fail(t, s, j, bbm.CodeJobFailed)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, JobID: j.ID, Attempts: 1, Lease: lease})
		})
	}
	wg.Wait()
	won = 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantErr(t, err, bbm.ErrJobConflict)
		}
	}
	check(t, won == 1, "%d retries of one job won, want 1", won)
	got := must(s.Jobs(ctx, m.ID))(t)
	check(t, len(got) == 1 && got[0].Attempts == 2, "after racing retries: %+v", got)
}

func testLongMessage(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	j := claimNew(t, s, m, 1, 10)
	long := strings.Repeat("é", 10_000)
	f := must(s.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobFailed, Message: long}))(t)
	check(t, len(f.ErrorMessage) < len(long) && f.ErrorMessage == bbm.TruncateMessage(long), "message of %d bytes stored as %d bytes", len(long), len(f.ErrorMessage))
}

func testCanceled(t *testing.T, s bbm.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check(t, s.CreateMigration(ctx, newMigration("x")) != nil, "CreateMigration with a canceled context succeeded")
	_, err := s.Migrations(ctx)
	check(t, err != nil, "Migrations with a canceled context succeeded")
	_, err = s.AcquireLock(ctx, 0)
	check(t, err != nil, "AcquireLock with a canceled context succeeded")
}
