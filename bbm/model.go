package bbm

import (
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is the state of a migration.
//
//	paused ──Resume──▶ active ──first job──▶ running ──all jobs done──▶ finished
//	   ▲                  │                    │  ▲
//	   └──────Pause───────┴────────────────────┘  │
//	                                failed ──RetryFailed / more attempts
type Status string

// Migration statuses.
const (
	StatusPaused   Status = "paused"   // not picked up until resumed
	StatusActive   Status = "active"   // registered, no job has run yet
	StatusRunning  Status = "running"  // jobs have started
	StatusFinished Status = "finished" // every job finished
	StatusFailed   Status = "failed"   // see Migration.ErrorCode
)

// Valid reports whether s is one of the migration statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPaused, StatusActive, StatusRunning, StatusFinished, StatusFailed:
		return true
	}
	return false
}

// JobStatus is the state of a job.
type JobStatus string

// Job statuses. A job row is created when it is first claimed, so there is
// no pending status: ranges not yet claimed have no row.
const (
	JobRunning  JobStatus = "running"
	JobFinished JobStatus = "finished"
	JobFailed   JobStatus = "failed"
)

// Strategy is how a migration's key range is cut into jobs.
type Strategy string

// Batching strategies.
const (
	// IntegerRange (the default) cuts [MinKey, MaxKey] of an integer
	// column into consecutive ranges of the batch size.
	IntegerRange Strategy = "integer_range"
	// NullKeys batches the rows WHERE column IS NULL, in key order: each
	// job covers the keys of the next batch-size rows that are still NULL.
	// The key is the leading column of a partial index WHERE column IS
	// NULL, which must exist: without it every batch would scan the table.
	NullKeys Strategy = "null_keys"
)

// Valid reports whether s is a known strategy.
func (s Strategy) Valid() bool { return s == IntegerRange || s == NullKeys }

// Migration is one registered batched background migration.
type Migration struct {
	ID   int64
	Name string
	// Schema and Table name the target table; Column is the column the
	// migration is about: the batching key for IntegerRange, the column
	// being filled for NullKeys.
	Schema string
	Table  string
	Column string
	// KeyColumn is the integer column whose ranges jobs cover: Column for
	// IntegerRange, the leading column of the partial index for NullKeys.
	KeyColumn string
	// MinKey and MaxKey bound the keys processed, both inclusive.
	MinKey int64
	MaxKey int64
	// BatchSize is the number of keys per job (the starting size when
	// adaptive batch sizing is on).
	BatchSize int
	Status    Status
	// WorkName is the Name of the Work that processes the batches (the
	// "job signature").
	WorkName     string
	Strategy     Strategy
	ErrorCode    ErrorCode
	ErrorMessage string
	// TotalTuples is the planner's row estimate for the table at
	// registration (pg_class.reltuples), for display.
	TotalTuples int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	StartedAt   time.Time // zero until the first job starts
	FinishedAt  time.Time // zero until finished
}

// TableIdent is the schema-qualified table as a pgx.Identifier; its
// Sanitize method quotes it for SQL.
func (m *Migration) TableIdent() pgx.Identifier { return pgx.Identifier{m.Schema, m.Table} }

// QualifiedTable is the quoted, schema-qualified table name.
func (m *Migration) QualifiedTable() string { return m.TableIdent().Sanitize() }

// Job is one range of a migration and the state of its latest attempt.
type Job struct {
	ID          int64
	MigrationID int64
	// MinKey and MaxKey bound the job's keys, both inclusive.
	MinKey    int64
	MaxKey    int64
	BatchSize int
	Status    JobStatus
	// Attempts counts the attempts started so far, including the running
	// one: it is incremented durably before the Work runs.
	Attempts     int
	ErrorCode    ErrorCode
	ErrorMessage string
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	// LeaseExpiresAt is when a running job whose worker went silent may be
	// taken over.
	LeaseExpiresAt time.Time
	// Duration is how long the latest finished or failed attempt took.
	Duration time.Duration

	// Migration is set on jobs returned by FindJob; it is nil on jobs read
	// from a Store.
	Migration *Migration
}

// Keys is the number of keys in the job's range.
func (j *Job) Keys() int64 { return j.MaxKey - j.MinKey + 1 }

// JobStats sums up a migration's jobs.
type JobStats struct {
	Total    int
	Running  int
	Finished int
	Failed   int
	// KeysDone is the number of keys covered by finished jobs.
	KeysDone int64
	// FirstStarted and LastFinished bound the time jobs ran; zero when
	// there are none.
	FirstStarted time.Time
	LastFinished time.Time
}

// Batch is what a Work processes: the rows of Table whose KeyColumn lies in
// [Start, End]. For NullKeys, only those rows whose Column IS NULL.
type Batch struct {
	// Migration is the migration's name.
	Migration string
	// Table is the schema-qualified table; Table.Sanitize() quotes it.
	Table pgx.Identifier
	// Column is the migration's column (see Migration.Column).
	Column string
	// KeyColumn is the integer column the range is over.
	KeyColumn string
	Strategy  Strategy
	// Start and End bound the keys, both inclusive.
	Start int64
	End   int64
	// Size is the batch size the job was cut with (End-Start+1 for
	// IntegerRange, the number of NULL rows for NullKeys, fewer at the end).
	Size int
	// Attempt is 1 on the first run of this range, higher on retries.
	Attempt int
}

// QuotedColumn is Column quoted for SQL.
func (b Batch) QuotedColumn() string { return pgx.Identifier{b.Column}.Sanitize() }

// QuotedKey is KeyColumn quoted for SQL.
func (b Batch) QuotedKey() string { return pgx.Identifier{b.KeyColumn}.Sanitize() }
