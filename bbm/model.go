package bbm

import (
	"encoding/json"
	"fmt"
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

// Strategy is how a migration's rows are cut into jobs.
type Strategy string

// Batching strategies. Both walk the key in index order (keyset
// pagination, as GitLab's each_batch does): a job starts at the first key
// after the previous job and ends at the batch-th key from there, so every
// job has BatchSize rows (fewer at the end) however sparse the keys are.
const (
	// Keyset (the default) batches every row of the table by its key: one
	// column of any orderable type (integer, uuid, text, timestamp, ...) or
	// several (a composite key such as (a, b)). Key columns must be NOT
	// NULL: a row whose key is NULL would be in no batch, so such a column
	// is refused at registration (ErrNullableKey).
	Keyset Strategy = "keyset"
	// NullKeys batches the rows WHERE column IS NULL, in key order: each
	// job covers the keys of the next batch-size rows that are still NULL.
	// The key is the columns of a partial index WHERE column IS NULL, which
	// must exist: without it every batch would scan the table.
	NullKeys Strategy = "null_keys"
)

// Valid reports whether s is a known strategy.
func (s Strategy) Valid() bool { return s == Keyset || s == NullKeys }

// FailurePolicy is what a migration does when a job keeps failing.
type FailurePolicy string

// Failure policies.
const (
	// FinishOthers (the default, as GitLab's batched background
	// migrations do) goes on with every other range and retries failed
	// jobs after the last range was cut; once nothing else is left and a
	// job has used all its attempts, the migration fails with the list of
	// failed ranges. It also stops early, failing the migration, when at
	// least FailedRatioMinJobs jobs exist and more than half of them are
	// failed: a Work that fails everywhere is not run over the whole table.
	FinishOthers FailurePolicy = "finish_others"
	// FailFast retries a failed job before any new range and fails the
	// migration as soon as one job has used all its attempts.
	FailFast FailurePolicy = "fail_fast"
)

// FailedRatioMinJobs is how many jobs a FinishOthers migration must have
// before a failed share above one half stops it early.
const FailedRatioMinJobs = 50

// Valid reports whether p is a known policy.
func (p FailurePolicy) Valid() bool { return p == FinishOthers || p == FailFast }

// Migration is one registered batched background migration.
type Migration struct {
	ID   int64
	Name string
	// Schema and Table name the target table. Column is the column the
	// migration is about: for Keyset the (first) key column, for NullKeys
	// the column being filled.
	Schema string
	Table  string
	Column string
	// KeyColumns are the columns jobs are cut by, in index order, and
	// KeyTypes their types (as format_type prints them).
	KeyColumns []string
	KeyTypes   []string
	// Lower and Upper bound the keys processed, both inclusive.
	Lower Key
	Upper Key
	// BatchSize is the number of rows per job (the starting size when
	// adaptive batch sizing is on).
	BatchSize int
	Status    Status
	// WorkName is the Name of the Work that processes the batches (the
	// "job signature").
	WorkName string
	// Delivery is the delivery the Work declared when the migration was
	// registered (see Work).
	Delivery  Delivery
	Strategy  Strategy
	OnFailure FailurePolicy
	// Args are the migration's arguments, passed to every batch of its
	// Work (Batch.Args); nil when it has none.
	Args         json.RawMessage
	ErrorCode    ErrorCode
	ErrorMessage string
	// EstimatedRows is the planner's estimate, at registration, of the
	// rows in [Lower, Upper] (for NullKeys, of those whose column is
	// NULL); Progress uses it until every range is cut.
	EstimatedRows int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
	StartedAt     time.Time // zero until the first job starts
	FinishedAt    time.Time // zero until finished
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
	// Start and End bound the job's keys, both inclusive.
	Start Key
	End   Key
	// BatchSize is the size the range was cut with; Rows is how many rows
	// it had then (BatchSize, or fewer for the last range).
	BatchSize int
	Rows      int
	Status    JobStatus
	// Attempts counts the attempts started so far, including the running
	// one: it is incremented durably before the Work runs.
	Attempts     int
	ErrorCode    ErrorCode
	ErrorMessage string
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	// LeaseExpiresAt is when a running job whose worker stopped renewing
	// its lease may be taken over.
	LeaseExpiresAt time.Time
	// Duration is how long the latest finished or failed attempt took.
	Duration time.Duration

	// After is, on a new range returned by FindJob (ID 0), the End of the
	// migration's last job when the range was cut (nil for the first
	// range); ClaimJob refuses the range if another was cut since.
	After Key
	// Migration is set on jobs returned by FindJob; it is nil on jobs read
	// from a Store.
	Migration *Migration
}

// JobStats sums up a migration's jobs.
type JobStats struct {
	Total    int
	Running  int
	Finished int
	Failed   int
	// RowsDone is the number of rows in finished jobs' ranges (as cut);
	// RowsCut counts the rows of every job.
	RowsDone int64
	RowsCut  int64
	// AllCut reports that the last job reaches the migration's Upper key:
	// no new range is left, and RowsCut is the migration's total.
	AllCut bool
	// FirstStarted and LastFinished bound the time jobs ran; zero when
	// there are none.
	FirstStarted time.Time
	LastFinished time.Time
}

// Batch is what a Work processes: the rows of Table whose key lies in
// [Start, End] (for NullKeys, only those whose Column IS NULL). Where
// gives the condition that selects them.
type Batch struct {
	// Migration is the migration's name.
	Migration string
	// Table is the schema-qualified table; Table.Sanitize() quotes it.
	Table pgx.Identifier
	// Column is the migration's column (see Migration.Column).
	Column string
	// KeyColumns and KeyTypes are the key the range is over.
	KeyColumns []string
	KeyTypes   []string
	Strategy   Strategy
	// Start and End bound the keys, both inclusive.
	Start Key
	End   Key
	// Size is the number of rows the range had when it was cut.
	Size int
	// Attempt is 1 on the first run of this range, higher on retries.
	Attempt int
	// Args are the migration's arguments (Definition.Args), nil if none.
	Args json.RawMessage
}

// Where is the SQL condition selecting the batch's rows, with its
// arguments numbered from $first: the key range (row-wise for a composite
// key, so the key's index serves it), and for NullKeys "AND column IS
// NULL". Use it as
//
//	cond, args := b.Where(1)
//	db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET c = f(x) WHERE `+cond, args...)
func (b Batch) Where(first int) (string, []any) {
	n := len(b.KeyColumns)
	key := keyExpr(b.KeyColumns)
	cond := key + " >= " + keyParams(b.KeyTypes, first) + " AND " + key + " <= " + keyParams(b.KeyTypes, first+n)
	if b.Strategy == NullKeys {
		cond += " AND " + b.QuotedColumn() + " IS NULL"
	}
	return cond, append(keyArgs(b.Start), keyArgs(b.End)...)
}

// StartInt and EndInt are Start and End of a single integer key; ok is
// false for other keys.
func (b Batch) StartInt() (int64, bool) { return b.Start.Int() }

// EndInt: see StartInt.
func (b Batch) EndInt() (int64, bool) { return b.End.Int() }

// DecodeArgs unmarshals the migration's arguments into v; without
// arguments it leaves v alone.
func (b Batch) DecodeArgs(v any) error {
	if len(b.Args) == 0 {
		return nil
	}
	if err := json.Unmarshal(b.Args, v); err != nil {
		return fmt.Errorf("bbm: migration %q: decoding args: %w", b.Migration, err)
	}
	return nil
}

// QuotedColumn is Column quoted for SQL.
func (b Batch) QuotedColumn() string { return pgx.Identifier{b.Column}.Sanitize() }

// QuotedKey is the key quoted for SQL: "id", or ("a", "b") for a
// composite key.
func (b Batch) QuotedKey() string { return keyExpr(b.KeyColumns) }
