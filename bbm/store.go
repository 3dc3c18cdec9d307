package bbm

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
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
	// AcquireLock takes the worker lock that lets one worker at a time,
	// across processes, run jobs. With wait > 0 it waits up to wait; with
	// wait <= 0 it tries once. A lock held elsewhere is ErrLockBusy. The
	// lock is also released when the process holding it dies.
	AcquireLock(ctx context.Context, wait time.Duration) (Lock, error)

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
	// [c.MinKey, c.MaxKey], which must lie above every existing job of the
	// migration; otherwise it takes the failed job c.JobID whose attempts
	// are still c.Attempts. Either way the job becomes running with its
	// attempts incremented and a lease of c.Lease, and the migration
	// (active, running or failed) becomes running. A claim that loses a
	// race is ErrJobConflict; a paused or finished migration is
	// ErrInvalidTransition.
	ClaimJob(ctx context.Context, c Claim) (*Job, error)
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
	// has used maxAttempts attempts. It returns the reaped jobs.
	ReapExpiredJobs(ctx context.Context, maxAttempts int) ([]*Job, error)
	// LastJob returns the migration's job with the highest keys, or nil.
	LastJob(ctx context.Context, migrationID int64) (*Job, error)
	// UnfinishedJobs returns the migration's running and failed jobs by
	// MinKey.
	UnfinishedJobs(ctx context.Context, migrationID int64) ([]*Job, error)
	// Jobs returns all the migration's jobs by MinKey.
	Jobs(ctx context.Context, migrationID int64) ([]*Job, error)
	// JobStats sums up the migration's jobs.
	JobStats(ctx context.Context, migrationID int64) (JobStats, error)
}

// Lock is a held worker lock.
type Lock interface {
	// Check returns nil while the lock is held, an error wrapping
	// ErrLockLost once it is not (say its connection broke).
	Check(ctx context.Context) error
	// Release gives the lock up. It is safe to call more than once.
	Release(ctx context.Context) error
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
	// JobID is 0 for a new job, else the failed job to retry.
	JobID int64
	// MinKey, MaxKey and BatchSize describe a new job.
	MinKey    int64
	MaxKey    int64
	BatchSize int
	// Attempts is the retried job's attempts as the claimer saw them.
	Attempts int
	// Lease is how long the job may stay running before another worker
	// may take it over; it must be positive.
	Lease time.Duration
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
	if len(msg) <= maxMessageLen {
		return msg
	}
	cut := maxMessageLen
	for cut > 0 && msg[cut]&0xC0 == 0x80 {
		cut--
	}
	return msg[:cut] + "…"
}
