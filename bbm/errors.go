package bbm

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them (or a
// context error), so callers can test with errors.Is while the message still
// says what is wrong and where.
var (
	// ErrInvalidName reports a migration name that is empty, too long or
	// has characters other than letters, digits and _.:/-.
	ErrInvalidName = errors.New("bbm: invalid migration name")
	// ErrInvalidTable reports a table name that does not parse as
	// [schema.]table or names no table in the catalog.
	ErrInvalidTable = errors.New("bbm: invalid table")
	// ErrInvalidColumn reports a column that does not exist on the table
	// or whose type cannot be a key.
	ErrInvalidColumn = errors.New("bbm: invalid column")
	// ErrInvalidRange reports a key range whose lower bound is above its
	// upper bound, or a bound with the wrong number of key columns.
	ErrInvalidRange = errors.New("bbm: invalid key range")
	// ErrInvalidBatchSize reports a batch size that is not positive.
	ErrInvalidBatchSize = errors.New("bbm: invalid batch size")
	// ErrInvalidStrategy reports an unknown batching strategy.
	ErrInvalidStrategy = errors.New("bbm: invalid batching strategy")
	// ErrMissingNullIndex reports a NullKeys migration whose table has no
	// valid partial index WHERE column IS NULL to find batches with.
	ErrMissingNullIndex = errors.New("bbm: no supporting partial index for NULL batching")
	// ErrUnknownWork reports a Work name that is not registered on the worker.
	ErrUnknownWork = errors.New("bbm: unknown work")
	// ErrInvalidWork reports a nil Work or one with an invalid name.
	ErrInvalidWork = errors.New("bbm: invalid work")
	// ErrDuplicateWork reports a second Work registered under one name.
	ErrDuplicateWork = errors.New("bbm: work already registered")
	// ErrDuplicateMigration reports a migration name that is already taken.
	ErrDuplicateMigration = errors.New("bbm: migration already exists")
	// ErrMigrationNotFound reports a migration that does not exist.
	ErrMigrationNotFound = errors.New("bbm: migration not found")
	// ErrInvalidTransition reports a status change that the migration's
	// current status does not allow (for example pausing a finished one).
	ErrInvalidTransition = errors.New("bbm: invalid status transition")
	// ErrBusy reports a claim refused because the running jobs already
	// fill the worker's Parallelism.
	ErrBusy = errors.New("bbm: as many jobs as allowed are running")
	// ErrNullableKey reports a key column that is not NOT NULL: rows whose
	// key is NULL would never be in a batch.
	ErrNullableKey = errors.New("bbm: nullable key column")
	// ErrInvalidListing reports listing options that no Store accepts
	// (see JobListOptions.Validate).
	ErrInvalidListing = errors.New("bbm: invalid listing")
	// ErrInvalidArgs reports migration arguments that are not valid JSON.
	ErrInvalidArgs = errors.New("bbm: invalid migration arguments")
	// ErrJobConflict reports a claim that lost to another claim of the
	// same job, or of a range cut at the same time.
	ErrJobConflict = errors.New("bbm: job claimed by someone else")
	// ErrJobLost reports a job result for an attempt that is no longer the
	// job's current one (its lease expired and it was taken over).
	ErrJobLost = errors.New("bbm: job attempt is no longer current")
	// ErrNoJobReady is returned by FindJob when migrations are unfinished
	// but nothing can run now: their remaining jobs are running elsewhere
	// or wait for a dead worker's lease to expire.
	ErrNoJobReady = errors.New("bbm: no job ready to run")
	// ErrNotTransactional reports a Store asked to record a job inside the
	// Work's transaction although its tables are not in that database.
	// Exactly-once Work needs the job tables next to the migrated table;
	// Work that writes elsewhere declares DeliveryAtLeastOnce.
	ErrNotTransactional = errors.New("bbm: store cannot record jobs in the work's transaction")
	// ErrJobFailed is wrapped by every *JobError.
	ErrJobFailed = errors.New("bbm: job failed")
	// ErrMaxJobAttempts reports a job that failed on its last allowed
	// attempt; its migration is failed.
	ErrMaxJobAttempts = errors.New("bbm: maximum job attempts reached")
	// ErrWorkPanic reports a Work that panicked; the panic was recovered.
	ErrWorkPanic = errors.New("bbm: work panicked")
	// ErrJobTimeout reports a Work that ran past the job timeout and was
	// cancelled.
	ErrJobTimeout = errors.New("bbm: job timed out")
	// ErrMigrationFailed is returned by SyncWorker.Run when migrations
	// failed during the run; the error names each one.
	ErrMigrationFailed = errors.New("bbm: migration failed")
	// ErrNoDatabase reports a worker built without a database and without
	// the Store or Catalog that would replace it.
	ErrNoDatabase = errors.New("bbm: no database")
	// ErrPoolTooSmall reports a database pool that cannot hold a
	// transaction for each of Parallelism running jobs plus one connection
	// for their lease renewals: renewals would wait for a job to end, and
	// every lease would expire while its Work ran.
	ErrPoolTooSmall = errors.New("bbm: database pool too small for Parallelism")
	// ErrWorkerRunning reports a second Run of a Worker that is running.
	ErrWorkerRunning = errors.New("bbm: worker is already running")
)

// ErrorCode says why a migration or a job failed. It is stored as text.
type ErrorCode string

// Error codes. The first seven are the migration failure codes; the rest say
// why a single job attempt failed.
const (
	CodeNone                    ErrorCode = ""
	CodeUnknown                 ErrorCode = "unknown"
	CodeInvalidTable            ErrorCode = "invalid_table"
	CodeInvalidColumn           ErrorCode = "invalid_column"
	CodeInvalidJobSignature     ErrorCode = "invalid_job_signature"
	CodeMaxJobAttemptsReached   ErrorCode = "max_job_attempts_reached"
	CodeInvalidBatchingStrategy ErrorCode = "invalid_batching_strategy"
	// CodeInvalidDelivery: exactly-once Work whose job tables are not in
	// its database (ErrNotTransactional).
	CodeInvalidDelivery ErrorCode = "invalid_delivery"

	CodeJobFailed    ErrorCode = "job_failed"    // Work returned an error
	CodeJobPanicked  ErrorCode = "job_panicked"  // Work panicked
	CodeJobTimeout   ErrorCode = "job_timeout"   // Work ran past the job timeout
	CodeJobAbandoned ErrorCode = "job_abandoned" // its worker died; the lease expired
	CodeJobCancelled ErrorCode = "job_cancelled" // the worker was stopped during the job
)

// sentinel returns the sentinel error that goes with a code.
func (c ErrorCode) sentinel() error {
	switch c {
	case CodeInvalidTable:
		return ErrInvalidTable
	case CodeInvalidColumn:
		return ErrInvalidColumn
	case CodeInvalidJobSignature:
		return ErrUnknownWork
	case CodeInvalidBatchingStrategy:
		return ErrInvalidStrategy
	case CodeInvalidDelivery:
		return ErrNotTransactional
	case CodeMaxJobAttemptsReached:
		return ErrMaxJobAttempts
	case CodeJobPanicked:
		return ErrWorkPanic
	case CodeJobTimeout:
		return ErrJobTimeout
	}
	return nil
}

// JobError is a failed job attempt, returned by ExecuteJob after the failure
// has been recorded. MigrationCode is set when the failure also failed the
// migration: its last allowed attempt failed (CodeMaxJobAttemptsReached), or
// retrying cannot help, as with a dropped table.
type JobError struct {
	Migration     string
	JobID         int64
	Start         Key
	End           Key
	Attempt       int
	Code          ErrorCode
	MigrationCode ErrorCode
	Err           error
}

// Terminal reports whether the migration failed with the job.
func (e *JobError) Terminal() bool { return e.MigrationCode != CodeNone }

// Error says which migration, job, range and attempt failed, and why.
func (e *JobError) Error() string {
	s := fmt.Sprintf("bbm: migration %q job %d [%s, %s] attempt %d: %s: %v",
		e.Migration, e.JobID, e.Start, e.End, e.Attempt, e.Code, e.Err)
	if e.Terminal() {
		s += fmt.Sprintf(" (migration failed: %s)", e.MigrationCode)
	}
	return s
}

// Unwrap returns ErrJobFailed, the sentinels of Code and MigrationCode (such
// as ErrWorkPanic, ErrJobTimeout, ErrMaxJobAttempts, ErrInvalidTable) and the
// cause.
func (e *JobError) Unwrap() []error {
	errs := []error{ErrJobFailed}
	for _, c := range []ErrorCode{e.Code, e.MigrationCode} {
		if s := c.sentinel(); s != nil {
			errs = append(errs, s)
		}
	}
	return append(errs, e.Err)
}

// PanicError is a recovered panic of a Work; it wraps ErrWorkPanic.
type PanicError struct {
	Value any
	Stack []byte
}

// Error includes the panic value; Stack holds the goroutine's stack.
func (e *PanicError) Error() string { return fmt.Sprintf("bbm: work panicked: %v", e.Value) }

// Unwrap returns ErrWorkPanic.
func (e *PanicError) Unwrap() error { return ErrWorkPanic }
