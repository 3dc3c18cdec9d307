package bbm

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/clip"
)

// Store is all the persistence the workers and Admin use. PostgresStore is
// the real one; bbmtest.Store is an in-memory fake; both pass
// bbmtest.TestStore.
//
// Every write is durable when the call returns and independent of any
// transaction a Work runs in: a job's attempt is counted before its Work
// runs, and its failure is recorded after the Work's transaction rolled
// back. The one exception is FinishJob given the Work's transaction, which
// records success inside it.
type Store interface {
	// CreateMigration stores m and sets its ID and timestamps. A taken
	// name is ErrDuplicateMigration. Status defaults to StatusActive.
	CreateMigration(ctx context.Context, m *Migration) error
	// Migration returns the migration with id, or ErrMigrationNotFound.
	Migration(ctx context.Context, id int64) (*Migration, error)
	// MigrationByName returns the named migration, or ErrMigrationNotFound.
	MigrationByName(ctx context.Context, name string) (*Migration, error)
	// Migrations lists the migrations with one of statuses (all of them
	// when none is given), by ID.
	Migrations(ctx context.Context, statuses ...Status) ([]*Migration, error)
	// SetMigrationStatus moves a migration to c.To if its status is one of
	// c.From (any when From is empty), else ErrInvalidTransition. It
	// records c.Code and c.Message (cleared when empty), sets StartedAt on
	// the first move to running and FinishedAt on a move to finished.
	SetMigrationStatus(ctx context.Context, id int64, c StatusChange) (*Migration, error)
	// ResumePaused moves every paused migration to active and returns how
	// many it moved.
	ResumePaused(ctx context.Context) (int, error)
	// RetryMigration moves a failed migration back to running, clears its
	// error, and resets the attempts of its failed jobs to zero, so that
	// they run again, first.
	RetryMigration(ctx context.Context, id int64) (*Migration, error)
	// FinishMigration moves an active or running migration whose jobs are
	// all finished to finished and reports true; it reports false and
	// changes nothing when a job is running or failed.
	FinishMigration(ctx context.Context, id int64) (bool, error)

	// ClaimJob starts an attempt: for c.JobID == 0 it creates a job for
	// the new range [c.Start, c.End], which must follow the migration's
	// last job: c.After must be that job's End (nil when there is none);
	// otherwise it takes the failed job c.JobID whose attempts are still
	// c.Attempts. Either way the job becomes running with its attempts
	// incremented and a lease of c.Lease, and the migration (active,
	// running or failed) becomes running. When c.Limit > 0 and c.Limit or
	// more jobs are running (leases not expired) among the migrations whose
	// Work is one of c.Works, the claim is ErrBusy; the check and the claim
	// are atomic across processes. A claim that loses a race is
	// ErrJobConflict; a paused or finished migration is
	// ErrInvalidTransition.
	ClaimJob(ctx context.Context, c Claim) (*Job, error)
	// RenewLease extends the lease of the running attempt attempt of job
	// jobID to lease from now. When the attempt is no longer current (its
	// lease expired and it was taken over) it is ErrJobLost.
	RenewLease(ctx context.Context, jobID int64, attempt int, lease time.Duration) error
	// FinishJob marks the running attempt r.Attempt of r.JobID finished.
	// When the attempt is no longer current it is ErrJobLost.
	//
	// With tx nil the change is durable when FinishJob returns. Otherwise
	// tx is the transaction the attempt's Work ran in, and the change is
	// made in it: the job is recorded finished if and only if the Work's
	// changes commit, which makes a range apply exactly once. A Store
	// whose tables are not in tx's database (bbmtest.Store has none)
	// returns an error wrapping ErrNotTransactional.
	FinishJob(ctx context.Context, tx pgx.Tx, r JobResult) (*Job, error)
	// FailJob marks the running attempt f.Attempt of f.JobID failed (and
	// the migration failed when f.MigrationCode is set). When the attempt
	// is no longer current it is ErrJobLost.
	FailJob(ctx context.Context, f JobFailure) (*Job, error)
	// ReapExpiredJobs marks running jobs whose lease has expired failed
	// with CodeJobAbandoned, and fails the migration of each of them that
	// has used maxAttempts attempts if its policy is FailFast. It returns
	// the reaped jobs.
	ReapExpiredJobs(ctx context.Context, maxAttempts int) ([]*Job, error)
	// LastJob returns the migration's last job (the one with the highest
	// keys: ranges are cut in key order), or nil.
	LastJob(ctx context.Context, migrationID int64) (*Job, error)
	// UnfinishedJobs returns the migration's running and failed jobs in
	// key order.
	UnfinishedJobs(ctx context.Context, migrationID int64) ([]*Job, error)
	// Jobs returns all the migration's jobs in key order.
	Jobs(ctx context.Context, migrationID int64) ([]*Job, error)
	// ListJobs returns a page of the migration's jobs in key order (which
	// is ID order: ranges are cut in key order), as opts selects. A
	// migration that does not exist has no jobs.
	ListJobs(ctx context.Context, migrationID int64, opts JobListOptions) ([]*Job, error)
	// JobStats sums up the migration's jobs.
	JobStats(ctx context.Context, migrationID int64) (JobStats, error)
}

// JobListOptions selects a page of a migration's jobs for ListJobs.
type JobListOptions struct {
	// Status, when set, keeps only the jobs in it.
	Status JobStatus
	// After, when positive, continues a listing: only jobs with a larger
	// ID (later in key order) are returned. Pass the last job's ID of the
	// previous page.
	After int64
	// Limit caps the page; it must be positive.
	Limit int
}

// Validate checks opts as every Store does before listing: a known status
// (or none), a positive limit, no negative After.
func (opts JobListOptions) Validate() error {
	switch {
	case opts.Status != "" && opts.Status != JobRunning && opts.Status != JobFinished && opts.Status != JobFailed:
		return fmt.Errorf("%w: unknown job status %q (want %s, %s or %s)", ErrInvalidListing, opts.Status, JobRunning, JobFinished, JobFailed)
	case opts.Limit <= 0:
		return fmt.Errorf("%w: limit must be positive, got %d", ErrInvalidListing, opts.Limit)
	case opts.After < 0:
		return fmt.Errorf("%w: negative After %d", ErrInvalidListing, opts.After)
	}
	return nil
}

// StatusChange is a conditional migration status change.
type StatusChange struct {
	To      Status
	From    []Status
	Code    ErrorCode
	Message string
}

// Claim asks ClaimJob to start an attempt.
type Claim struct {
	MigrationID int64
	// JobID is 0 for a new range, else the failed job to retry.
	JobID int64
	// After, Start, End, BatchSize and Rows describe a new range: After is
	// the End of the migration's last job as the claimer saw it (nil for
	// the first range), Rows the rows in [Start, End] when it was cut.
	After     Key
	Start     Key
	End       Key
	BatchSize int
	Rows      int
	// Attempts is the retried job's attempts as the claimer saw them.
	Attempts int
	// Lease is how long the job may stay running without a renewal before
	// another worker may take it over; it must be positive.
	Lease time.Duration
	// Limit, when positive, bounds the jobs running at once among the
	// migrations whose WorkName is in Works (see ClaimJob).
	Limit int
	Works []string
}

// JobResult reports a finished attempt.
type JobResult struct {
	JobID    int64
	Attempt  int
	Duration time.Duration
}

// JobFailure reports a failed attempt.
type JobFailure struct {
	JobID    int64
	Attempt  int
	Duration time.Duration
	Code     ErrorCode
	Message  string
	// Refund gives the attempt back (attempts is decremented), for an
	// attempt that was cancelled by the worker's shutdown rather than
	// failed by the Work.
	Refund bool
	// MigrationCode, when set, fails the migration with this code.
	MigrationCode ErrorCode
}

// maxMessageLen bounds stored error messages (a panic's stack can be long).
const maxMessageLen = 4000

// TruncateMessage shortens msg to what stores keep, on a rune boundary.
func TruncateMessage(msg string) string {
	return clip.Marked(msg, maxMessageLen)
}
