package bbmtest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
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
	t.Run("ListJobsPages", func(t *testing.T) { testListJobs(t, newStore(t)) })
	t.Run("RenewLease", func(t *testing.T) { testRenewLease(t, newStore(t)) })
	t.Run("ParallelismLimit", func(t *testing.T) { testLimit(t, newStore(t)) })
	t.Run("CompositeKeysArgsAndModes", func(t *testing.T) { testCompositeKeys(t, newStore(t)) })
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
	return &bbm.Migration{Name: name, Schema: "public", Table: "items", Column: "id", KeyColumns: []string{"id"},
		KeyTypes: []string{"bigint"}, Lower: bbm.IntKey(1), Upper: bbm.IntKey(100), BatchSize: 10, WorkName: "work"}
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

// newRange is a claim of [lo, hi] after the migration's last job.
func newRange(t *testing.T, s bbm.Store, m *bbm.Migration, lo, hi int64, lease time.Duration) bbm.Claim {
	t.Helper()
	var after bbm.Key
	if last := must(s.LastJob(context.Background(), m.ID))(t); last != nil {
		after = last.End
	}
	return bbm.Claim{MigrationID: m.ID, After: after, Start: bbm.IntKey(lo), End: bbm.IntKey(hi),
		BatchSize: int(hi - lo + 1), Rows: int(hi - lo + 1), Lease: lease}
}

func claimNew(t *testing.T, s bbm.Store, m *bbm.Migration, lo, hi int64) *bbm.Job {
	t.Helper()
	return must(s.ClaimJob(context.Background(), newRange(t, s, m, lo, hi, lease)))(t)
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
	check(t, m.Strategy == bbm.Keyset, "default strategy = %q, want keyset", m.Strategy)
	check(t, m.Delivery == bbm.DeliveryExactlyOnce, "default delivery = %q", m.Delivery)
	check(t, m.OnFailure == bbm.FinishOthers, "default failure policy = %q", m.OnFailure)
	check(t, m.Args == nil, "default args = %q, want nil", m.Args)
	check(t, !m.CreatedAt.IsZero() && !m.UpdatedAt.IsZero(), "timestamps not set: %+v", m)
	check(t, m.StartedAt.IsZero() && m.FinishedAt.IsZero(), "started/finished set on a new migration: %+v", m)

	byID := must(s.Migration(ctx, m.ID))(t)
	byName := must(s.MigrationByName(ctx, "fill_a"))(t)
	for _, got := range []*bbm.Migration{byID, byName} {
		check(t, got.Name == m.Name && got.Schema == "public" && got.Table == "items" && got.Column == "id" &&
			slices.Equal(got.KeyColumns, []string{"id"}) && slices.Equal(got.KeyTypes, []string{"bigint"}) &&
			got.Lower.Equal(bbm.IntKey(1)) && got.Upper.Equal(bbm.IntKey(100)) && got.BatchSize == 10 &&
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
	check(t, j.ID > 0 && j.MigrationID == m.ID && j.Start.Equal(bbm.IntKey(1)) && j.End.Equal(bbm.IntKey(10)) &&
		j.BatchSize == 10 && j.Rows == 10, "claimed %+v", j)
	check(t, j.Status == bbm.JobRunning && j.Attempts == 1, "a new claim is %s with %d attempts, want running with 1", j.Status, j.Attempts)
	check(t, j.LeaseExpiresAt.After(j.StartedAt), "lease %v not after start %v", j.LeaseExpiresAt, j.StartedAt)
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, got.Status == bbm.StatusRunning && !got.StartedAt.IsZero(), "migration after the first claim: %+v", got)

	// A range cut after anything but the last job's end lost a race.
	for _, after := range []bbm.Key{nil, bbm.IntKey(5), bbm.IntKey(11)} {
		_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, After: after, Start: bbm.IntKey(11), End: bbm.IntKey(20),
			BatchSize: 10, Rows: 10, Lease: lease})
		wantErr(t, err, bbm.ErrJobConflict)
	}
	bad := newRange(t, s, m, 11, 20, lease)
	bad.End = bbm.Key{"20", "x"}
	_, err := s.ClaimJob(ctx, bad)
	wantErr(t, err, bbm.ErrInvalidRange)
	bad = newRange(t, s, m, 11, 20, 0)
	_, err = s.ClaimJob(ctx, bad)
	check(t, err != nil, "a claim without a lease was accepted")
	check(t, len(must(s.Jobs(ctx, m.ID))(t)) == 1, "refused claims left jobs")

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
		_, err := s.ClaimJob(ctx, newRange(t, s, m, 1, 10, lease))
		wantErr(t, err, bbm.ErrInvalidTransition)
		check(t, len(must(s.Jobs(ctx, m.ID))(t)) == 0, "a refused claim left a job")
	}
	_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: 987654, Start: bbm.IntKey(1), End: bbm.IntKey(10), BatchSize: 10, Lease: lease})
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
	check(t, r.Status == bbm.JobRunning && r.Attempts == 2 && r.ErrorCode == bbm.CodeNone && r.Start.Equal(bbm.IntKey(1)) &&
		r.End.Equal(bbm.IntKey(10)), "retried job: %+v", r)

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
	failFast := func(name string) *bbm.Migration {
		m := newMigration(name)
		m.OnFailure = bbm.FailFast
		must(0, s.CreateMigration(ctx, m))(t)
		return m
	}
	m := failFast("m")
	n := failFast("n")
	short := must(s.ClaimJob(ctx, newRange(t, s, m, 1, 10, time.Millisecond)))(t)
	long := claimNew(t, s, m, 11, 20)
	last := must(s.ClaimJob(ctx, newRange(t, s, n, 1, 10, time.Millisecond)))(t)
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

	// FinishOthers migrations fail later, once nothing else is left.
	fo := create(t, s, "finish_others")
	must(s.ClaimJob(ctx, newRange(t, s, fo, 1, 10, time.Millisecond)))(t)
	time.Sleep(20 * time.Millisecond)
	check(t, len(must(s.ReapExpiredJobs(ctx, 1))(t)) == 1, "not reaped")
	got := must(s.Migration(ctx, fo.ID))(t)
	check(t, got.Status == bbm.StatusRunning, "reaping a FinishOthers job failed its migration: %+v", got)

	o := failFast("o")
	must(s.ClaimJob(ctx, newRange(t, s, o, 1, 10, time.Millisecond)))(t)
	time.Sleep(20 * time.Millisecond)
	check(t, len(must(s.ReapExpiredJobs(ctx, 5))(t)) == 1, "not reaped")
	got = must(s.Migration(ctx, o.ID))(t)
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
	check(t, st.Total == 4 && st.Finished == 2 && st.Failed == 1 && st.Running == 1 && st.RowsDone == 30 &&
		st.RowsCut == 50 && !st.AllCut, "stats: %+v", st)
	finish(t, s, claimNew(t, s, m, 51, 100))
	st = must(s.JobStats(ctx, m.ID))(t)
	check(t, st.AllCut && st.RowsCut == 100 && st.RowsDone == 80, "stats after the last range: %+v", st)
	check(t, !st.FirstStarted.IsZero() && !st.LastFinished.Before(st.FirstStarted), "stats times: %+v", st)
}

func testRenewLease(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	j := must(s.ClaimJob(ctx, newRange(t, s, m, 1, 10, 50*time.Millisecond)))(t)
	must(0, s.RenewLease(ctx, j.ID, j.Attempts, time.Hour))(t)
	got := must(s.Jobs(ctx, m.ID))(t)[0]
	check(t, got.LeaseExpiresAt.Sub(j.LeaseExpiresAt) > 30*time.Minute, "lease %v not extended from %v", got.LeaseExpiresAt, j.LeaseExpiresAt)
	time.Sleep(60 * time.Millisecond)
	check(t, len(must(s.ReapExpiredJobs(ctx, 5))(t)) == 0, "a renewed job was reaped")
	wantErr(t, s.RenewLease(ctx, j.ID, j.Attempts+1, time.Hour), bbm.ErrJobLost)
	fail(t, s, got, bbm.CodeJobFailed)
	wantErr(t, s.RenewLease(ctx, j.ID, j.Attempts, time.Hour), bbm.ErrJobLost)
	check(t, s.RenewLease(ctx, j.ID, j.Attempts, 0) != nil, "a renewal without a lease was accepted")
}

func testLimit(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	a := create(t, s, "a")
	b := create(t, s, "b")
	other := newMigration("other")
	other.WorkName = "other_work"
	must(0, s.CreateMigration(ctx, other))(t)
	works := []string{"work"}
	limited := func(m *bbm.Migration, lo, hi int64, limit int) (*bbm.Job, error) {
		c := newRange(t, s, m, lo, hi, lease)
		c.Limit, c.Works = limit, works
		return s.ClaimJob(ctx, c)
	}
	j := must(limited(a, 1, 10, 2))(t)
	must(limited(b, 1, 10, 2))(t)
	_, err := limited(a, 11, 20, 2)
	wantErr(t, err, bbm.ErrBusy)
	_, err = limited(b, 11, 20, 2)
	wantErr(t, err, bbm.ErrBusy)
	check(t, len(must(s.Jobs(ctx, a.ID))(t)) == 1, "a busy claim left a job")
	// Another Work's jobs have a budget of their own.
	c := newRange(t, s, other, 1, 10, lease)
	c.Limit, c.Works = 1, []string{"other_work"}
	must(s.ClaimJob(ctx, c))(t)
	// A finished job frees its place; no limit means none.
	finish(t, s, j)
	must(limited(a, 11, 20, 2))(t)
	must(limited(a, 21, 30, 0))(t)
	// A job whose lease expired (its worker died) does not count.
	d := create(t, s, "d")
	c = newRange(t, s, d, 1, 10, time.Millisecond)
	must(s.ClaimJob(ctx, c))(t)
	time.Sleep(20 * time.Millisecond)
	_, err = limited(d, 11, 20, 3) // a has 2 running, b 1
	wantErr(t, err, bbm.ErrBusy)
	must(limited(d, 11, 20, 4))(t) // would be busy if d's expired job counted
}

func testCompositeKeys(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := &bbm.Migration{Name: "tags", Schema: "public", Table: "tags", Column: "repository_id",
		KeyColumns: []string{"repository_id", "name"}, KeyTypes: []string{"uuid", "text"},
		Lower: bbm.Key{"00000000-0000-0000-0000-000000000000", ""}, Upper: bbm.Key{"ffffffff-ffff-ffff-ffff-ffffffffffff", "zz"},
		BatchSize: 2, WorkName: "work", Delivery: bbm.DeliveryAtLeastOnce, OnFailure: bbm.FailFast,
		Args: json.RawMessage(`{"bucket": "large", "limit": 3}`)}
	must(0, s.CreateMigration(ctx, m))(t)
	got := must(s.Migration(ctx, m.ID))(t)
	check(t, slices.Equal(got.KeyColumns, m.KeyColumns) && slices.Equal(got.KeyTypes, m.KeyTypes) &&
		got.Lower.Equal(m.Lower) && got.Upper.Equal(m.Upper), "keys read back as %+v", got)
	check(t, got.Delivery == bbm.DeliveryAtLeastOnce && got.OnFailure == bbm.FailFast, "modes read back as %q %q", got.Delivery, got.OnFailure)
	var args map[string]any
	must(0, json.Unmarshal(got.Args, &args))(t)
	check(t, args["bucket"] == "large" && args["limit"] == 3.0, "args read back as %s", got.Args)

	first := bbm.Key{"1b4e28ba-2fa1-11d2-883f-0016d3cca427", "latest"}
	end := bbm.Key{"1b4e28ba-2fa1-11d2-883f-0016d3cca427", "v1.0"}
	j := must(s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, Start: first, End: end, BatchSize: 2, Rows: 2, Lease: lease}))(t)
	check(t, j.Start.Equal(first) && j.End.Equal(end), "job keys %s..%s", j.Start, j.End)
	finish(t, s, j)
	k := must(s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, After: end, Start: bbm.Key{"9b4e28ba-2fa1-11d2-883f-0016d3cca427", "a"},
		End: m.Upper, BatchSize: 2, Rows: 1, Lease: lease}))(t)
	last := must(s.LastJob(ctx, m.ID))(t)
	check(t, last.ID == k.ID && last.End.Equal(m.Upper), "last job %+v", last)
	finish(t, s, k)
	st := must(s.JobStats(ctx, m.ID))(t)
	check(t, st.AllCut && st.RowsDone == 3, "stats %+v", st)

	_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, After: m.Upper, Start: bbm.IntKey(1), End: bbm.IntKey(2),
		BatchSize: 2, Rows: 2, Lease: lease})
	wantErr(t, err, bbm.ErrInvalidRange)
}

func testRacingClaims(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, Start: bbm.IntKey(1), End: bbm.IntKey(10),
				BatchSize: 10, Rows: 10, Lease: lease})
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
	_, err = s.ClaimJob(ctx, bbm.Claim{MigrationID: 1, Start: bbm.IntKey(1), End: bbm.IntKey(2), BatchSize: 2, Lease: lease})
	check(t, err != nil, "ClaimJob with a canceled context succeeded")
}

func testListJobs(t *testing.T, s bbm.Store) {
	ctx := context.Background()
	m := create(t, s, "m")
	other := create(t, s, "other")
	var jobs []*bbm.Job
	for i := int64(0); i < 7; i++ {
		jobs = append(jobs, claimNew(t, s, m, 10*i+1, 10*i+10))
	}
	claimNew(t, s, other, 1, 10)
	for _, j := range []*bbm.Job{jobs[0], jobs[2], jobs[3], jobs[6]} {
		finish(t, s, j)
	}
	for _, j := range []*bbm.Job{jobs[1], jobs[5]} {
		must(s.FailJob(ctx, bbm.JobFailure{JobID: j.ID, Attempt: 1, Code: bbm.CodeJobFailed, Message: "boom"}))(t)
	}
	ids := func(js []*bbm.Job) []int64 {
		out := make([]int64, len(js))
		for i, j := range js {
			out[i] = j.ID
		}
		return out
	}
	all := ids(jobs)
	// Pages of 3 walk every job once, in key order, and stay within m.
	var got []int64
	opts := bbm.JobListOptions{Limit: 3}
	for {
		page := must(s.ListJobs(ctx, m.ID, opts))(t)
		check(t, len(page) <= 3, "page of %d jobs with limit 3", len(page))
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		opts.After = page[len(page)-1].ID
	}
	check(t, slices.Equal(got, all), "paged jobs %v, want %v", got, all)
	for _, c := range []struct {
		status bbm.JobStatus
		want   []int64
	}{
		{bbm.JobFinished, []int64{all[0], all[2], all[3], all[6]}},
		{bbm.JobFailed, []int64{all[1], all[5]}},
		{bbm.JobRunning, []int64{all[4]}},
	} {
		page := must(s.ListJobs(ctx, m.ID, bbm.JobListOptions{Status: c.status, Limit: 10}))(t)
		check(t, slices.Equal(ids(page), c.want), "%s jobs %v, want %v", c.status, ids(page), c.want)
		for _, j := range page {
			check(t, j.Status == c.status && j.MigrationID == m.ID, "listed %+v for status %s", j, c.status)
		}
	}
	failed := must(s.ListJobs(ctx, m.ID, bbm.JobListOptions{Status: bbm.JobFailed, After: all[1], Limit: 10}))(t)
	check(t, len(failed) == 1 && failed[0].ID == all[5] && failed[0].ErrorMessage == "boom", "failed after the first: %+v", failed)
	check(t, len(must(s.ListJobs(ctx, m.ID+1000, bbm.JobListOptions{Limit: 10}))(t)) == 0, "jobs of a missing migration")
	for _, bad := range []bbm.JobListOptions{{}, {Limit: -1}, {Limit: 1, Status: "done"}, {Limit: 1, After: -1}} {
		_, err := s.ListJobs(ctx, m.ID, bad)
		wantErr(t, err, bbm.ErrInvalidListing)
	}
}
