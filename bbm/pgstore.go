package bbm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/storage"
)

// The tables of Ferry's bbm schema (storage/migrations), named in this one
// place; the store qualifies them with its Handle's schema
// (storage.WithSchema).
const (
	migrationsTable = "ferry_bbm_migrations"
	jobsTable       = "ferry_bbm_jobs"
)

// claimLockKey is the transaction-scoped advisory lock that serialises job
// claims across processes ("ferrybbc" in ASCII), so that counting running
// jobs and starting one is atomic. It is held for the few statements of a
// claim and released at its commit, so it needs no session state and works
// through a transaction-pooling PgBouncer. (It differs from the session
// lock key of earlier versions, "ferrybbm".)
const claimLockKey int64 = 0x6665727279626263

// PostgresStoreOptions tunes NewPostgresStore. The zero value is ready to
// use; it has no fields yet.
type PostgresStoreOptions struct{}

// PostgresStore is the Store on Ferry's schema (storage/migrations). Each
// method is one statement or one short transaction; nothing depends on
// session state (no session advisory locks, no SET outside a
// transaction), so it works through a transaction-pooling PgBouncer.
type PostgresStore struct {
	db storage.Handle
	// migrationsTable and jobsTable are the tables' quoted, qualified names.
	migrationsTable, jobsTable string
}

var _ Store = (*PostgresStore)(nil)

// NewPostgresStore returns a Store on db: storage.FromPool, storage.FromSQL
// or a *storage.DB (whose primary is used).
func NewPostgresStore(db storage.Handle, _ PostgresStoreOptions) *PostgresStore {
	return &PostgresStore{db: db,
		migrationsTable: storage.Table(db, migrationsTable), jobsTable: storage.Table(db, jobsTable)}
}

const migrationColumns = `id, name, table_schema, table_name, column_name, key_columns, key_types,
	lower_key, upper_key, batch_size, status, work_name, delivery, strategy, on_failure, args,
	error_code, error_message, estimated_rows, created_at, updated_at, started_at, finished_at`

const jobColumns = `id, migration_id, start_key, end_key, batch_size, row_count, status, attempts,
	error_code, error_message, created_at, started_at, finished_at, lease_expires_at, duration_us`

func scanMigration(row pgx.Row) (*Migration, error) {
	var m Migration
	var started, finished *time.Time
	var lower, upper []string
	err := row.Scan(&m.ID, &m.Name, &m.Schema, &m.Table, &m.Column, &m.KeyColumns, &m.KeyTypes,
		&lower, &upper, &m.BatchSize, &m.Status, &m.WorkName, &m.Delivery, &m.Strategy, &m.OnFailure, &m.Args,
		&m.ErrorCode, &m.ErrorMessage, &m.EstimatedRows, &m.CreatedAt, &m.UpdatedAt, &started, &finished)
	if err != nil {
		return nil, err
	}
	m.Lower, m.Upper = lower, upper
	m.StartedAt, m.FinishedAt = deref(started), deref(finished)
	return &m, nil
}

func scanJob(row pgx.Row) (*Job, error) {
	var j Job
	var started, finished, lease *time.Time
	var start, end []string
	var us, rows int64
	err := row.Scan(&j.ID, &j.MigrationID, &start, &end, &j.BatchSize, &rows, &j.Status, &j.Attempts,
		&j.ErrorCode, &j.ErrorMessage, &j.CreatedAt, &started, &finished, &lease, &us)
	if err != nil {
		return nil, err
	}
	j.Start, j.End, j.Rows = start, end, int(rows)
	j.StartedAt, j.FinishedAt, j.LeaseExpiresAt = deref(started), deref(finished), deref(lease)
	j.Duration = time.Duration(us) * time.Microsecond
	return &j, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func collect[T any](rows pgx.Rows, scan func(pgx.Row) (*T, error)) ([]*T, error) {
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// CreateMigration implements Store.
func (s *PostgresStore) CreateMigration(ctx context.Context, m *Migration) error {
	setMigrationDefaults(m)
	var args any
	if len(m.Args) > 0 {
		args = string(m.Args)
	}
	row := s.db.QueryRow(ctx, `INSERT INTO `+s.migrationsTable+`
		(name, table_schema, table_name, column_name, key_columns, key_types, lower_key, upper_key,
		 batch_size, status, work_name, delivery, strategy, on_failure, args, error_code, error_message,
		 estimated_rows, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17, $18,
		 CASE WHEN $10 = 'finished' THEN now() END)
		RETURNING `+migrationColumns,
		m.Name, m.Schema, m.Table, m.Column, m.KeyColumns, m.KeyTypes, []string(m.Lower), []string(m.Upper),
		m.BatchSize, m.Status, m.WorkName, m.Delivery, m.Strategy, m.OnFailure, args, m.ErrorCode,
		TruncateMessage(m.ErrorMessage), m.EstimatedRows)
	got, err := scanMigration(row)
	if isUniqueViolation(err, "ferry_bbm_migrations_name_key") {
		return fmt.Errorf("%w: %q", ErrDuplicateMigration, m.Name)
	}
	if err != nil {
		return fmt.Errorf("bbm: creating migration %q: %w", m.Name, err)
	}
	*m = *got
	return nil
}

// setMigrationDefaults fills the fields a Store defaults.
func setMigrationDefaults(m *Migration) {
	if m.Status == "" {
		m.Status = StatusActive
	}
	if m.Strategy == "" {
		m.Strategy = Keyset
	}
	if m.Delivery == "" {
		m.Delivery = DeliveryExactlyOnce
	}
	if m.OnFailure == "" {
		m.OnFailure = FinishOthers
	}
}

// Migration implements Store.
func (s *PostgresStore) Migration(ctx context.Context, id int64) (*Migration, error) {
	m, err := scanMigration(s.db.QueryRow(ctx, `SELECT `+migrationColumns+` FROM `+s.migrationsTable+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: id %d", ErrMigrationNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("bbm: reading migration %d: %w", id, err)
	}
	return m, nil
}

// MigrationByName implements Store.
func (s *PostgresStore) MigrationByName(ctx context.Context, name string) (*Migration, error) {
	m, err := scanMigration(s.db.QueryRow(ctx, `SELECT `+migrationColumns+` FROM `+s.migrationsTable+` WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrMigrationNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("bbm: reading migration %q: %w", name, err)
	}
	return m, nil
}

// Migrations implements Store.
func (s *PostgresStore) Migrations(ctx context.Context, statuses ...Status) ([]*Migration, error) {
	rows, err := s.db.Query(ctx, `SELECT `+migrationColumns+` FROM `+s.migrationsTable+`
		WHERE cardinality($1::text[]) = 0 OR status = ANY($1::text[]) ORDER BY id`, statusStrings(statuses))
	if err != nil {
		return nil, fmt.Errorf("bbm: listing migrations: %w", err)
	}
	ms, err := collect(rows, scanMigration)
	if err != nil {
		return nil, fmt.Errorf("bbm: listing migrations: %w", err)
	}
	return ms, nil
}

func statusStrings(ss []Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// SetMigrationStatus implements Store.
func (s *PostgresStore) SetMigrationStatus(ctx context.Context, id int64, c StatusChange) (*Migration, error) {
	return s.setStatus(ctx, s.db, id, c)
}

func (s *PostgresStore) setStatus(ctx context.Context, q storage.Querier, id int64, c StatusChange) (*Migration, error) {
	if !c.To.Valid() {
		return nil, fmt.Errorf("%w: unknown status %q", ErrInvalidTransition, c.To)
	}
	m, err := scanMigration(q.QueryRow(ctx, `UPDATE `+s.migrationsTable+` SET
			status = $2, error_code = $4, error_message = $5, updated_at = now(),
			started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
			finished_at = CASE WHEN $2 = 'finished' THEN now() ELSE finished_at END
		WHERE id = $1 AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
		RETURNING `+migrationColumns,
		id, c.To, statusStrings(c.From), c.Code, TruncateMessage(c.Message)))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, err := scanMigration(q.QueryRow(ctx, `SELECT `+migrationColumns+` FROM `+s.migrationsTable+` WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%w: id %d", ErrMigrationNotFound, id)
		}
		if err != nil {
			return nil, fmt.Errorf("bbm: reading migration %d: %w", id, err)
		}
		return nil, fmt.Errorf("%w: migration %q is %s, not %v", ErrInvalidTransition, cur.Name, cur.Status, c.From)
	}
	if err != nil {
		return nil, fmt.Errorf("bbm: updating migration %d: %w", id, err)
	}
	return m, nil
}

// ResumePaused implements Store.
func (s *PostgresStore) ResumePaused(ctx context.Context) (int, error) {
	tag, err := s.db.Exec(ctx, `UPDATE `+s.migrationsTable+` SET status = 'active', updated_at = now()
		WHERE status = 'paused'`)
	if err != nil {
		return 0, fmt.Errorf("bbm: resuming paused migrations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// RetryMigration implements Store.
func (s *PostgresStore) RetryMigration(ctx context.Context, id int64) (*Migration, error) {
	var m *Migration
	err := storage.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		m, err = s.setStatus(ctx, tx, id, StatusChange{To: StatusRunning, From: []Status{StatusFailed}})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+s.jobsTable+` SET attempts = 0
			WHERE migration_id = $1 AND status = 'failed'`, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bbm: retrying migration %d: %w", id, err)
	}
	return m, nil
}

// FinishMigration implements Store.
func (s *PostgresStore) FinishMigration(ctx context.Context, id int64) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE `+s.migrationsTable+` m SET status = 'finished',
			error_code = '', error_message = '', updated_at = now(), finished_at = now()
		WHERE id = $1 AND status IN ('active', 'running')
		  AND NOT EXISTS (SELECT 1 FROM `+s.jobsTable+` j WHERE j.migration_id = m.id AND j.status <> 'finished')`, id)
	if err != nil {
		return false, fmt.Errorf("bbm: finishing migration %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ClaimJob implements Store. Claims are serialised by a transaction-scoped
// advisory lock: the budget check (Limit) and the new job are one atomic
// step across processes.
func (s *PostgresStore) ClaimJob(ctx context.Context, c Claim) (*Job, error) {
	if c.Lease <= 0 {
		return nil, fmt.Errorf("bbm: claim of migration %d: lease must be positive", c.MigrationID)
	}
	var job *Job
	err := storage.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, claimLockKey); err != nil {
			return err
		}
		var status Status
		var name string
		err := tx.QueryRow(ctx, `SELECT status, name FROM `+s.migrationsTable+` WHERE id = $1 FOR UPDATE`,
			c.MigrationID).Scan(&status, &name)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: id %d", ErrMigrationNotFound, c.MigrationID)
		}
		if err != nil {
			return err
		}
		if status != StatusActive && status != StatusRunning && status != StatusFailed {
			return fmt.Errorf("%w: migration %q is %s", ErrInvalidTransition, name, status)
		}
		if c.Limit > 0 {
			var running int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+s.jobsTable+` j JOIN `+s.migrationsTable+` m ON m.id = j.migration_id
				WHERE j.status = 'running' AND j.lease_expires_at > now() AND m.work_name = ANY($1)`,
				c.Works).Scan(&running); err != nil {
				return err
			}
			if running >= c.Limit {
				return fmt.Errorf("%w: %d of %d", ErrBusy, running, c.Limit)
			}
		}
		lease := c.Lease.Microseconds()
		if c.JobID == 0 {
			job, err = s.claimNew(ctx, tx, c, lease)
		} else {
			job, err = scanJob(tx.QueryRow(ctx, `UPDATE `+s.jobsTable+` SET status = 'running',
					attempts = attempts + 1, error_code = '', error_message = '', started_at = now(),
					finished_at = NULL, lease_expires_at = now() + $4::bigint * interval '1 microsecond'
				WHERE id = $1 AND migration_id = $2 AND status = 'failed' AND attempts = $3
				RETURNING `+jobColumns, c.JobID, c.MigrationID, c.Attempts, lease))
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: job %d is no longer failed with %d attempts", ErrJobConflict, c.JobID, c.Attempts)
			}
		}
		if err != nil {
			return err
		}
		_, err = s.setStatus(ctx, tx, c.MigrationID, StatusChange{To: StatusRunning})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bbm: claiming a job of migration %d: %w", c.MigrationID, err)
	}
	return job, nil
}

// validNewRange checks a new range's fields (not its order: only the
// database can compare keys).
func validNewRange(c Claim) error {
	if len(c.Start) == 0 || len(c.End) != len(c.Start) || (c.After != nil && len(c.After) != len(c.Start)) ||
		c.BatchSize <= 0 || c.Rows < 0 {
		return fmt.Errorf("%w: new job [%s, %s] after %v, batch %d, rows %d", ErrInvalidRange,
			c.Start, c.End, c.After, c.BatchSize, c.Rows)
	}
	return nil
}

func (s *PostgresStore) claimNew(ctx context.Context, tx pgx.Tx, c Claim, leaseMicros int64) (*Job, error) {
	if err := validNewRange(c); err != nil {
		return nil, err
	}
	var last []string
	if err := tx.QueryRow(ctx, `SELECT end_key FROM `+s.jobsTable+` WHERE migration_id = $1
		ORDER BY id DESC LIMIT 1`, c.MigrationID).Scan(&last); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if !Key(last).Equal(c.After) {
		return nil, fmt.Errorf("%w: range [%s, %s] was cut after %v, but the last job now ends at %v",
			ErrJobConflict, c.Start, c.End, c.After, Key(last))
	}
	job, err := scanJob(tx.QueryRow(ctx, `INSERT INTO `+s.jobsTable+`
			(migration_id, start_key, end_key, batch_size, row_count, status, attempts, started_at, lease_expires_at)
		VALUES ($1, $2, $3, $4, $5, 'running', 1, now(), now() + $6::bigint * interval '1 microsecond')
		RETURNING `+jobColumns, c.MigrationID, []string(c.Start), []string(c.End), c.BatchSize, c.Rows, leaseMicros))
	if isUniqueViolation(err, "ferry_bbm_jobs_range_key") {
		return nil, fmt.Errorf("%w: a job starting at %s exists", ErrJobConflict, c.Start)
	}
	return job, err
}

// RenewLease implements Store.
func (s *PostgresStore) RenewLease(ctx context.Context, jobID int64, attempt int, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("bbm: renewing job %d: lease must be positive", jobID)
	}
	tag, err := s.db.Exec(ctx, `UPDATE `+s.jobsTable+` SET lease_expires_at = now() + $3::bigint * interval '1 microsecond'
		WHERE id = $1 AND status = 'running' AND attempts = $2`, jobID, attempt, lease.Microseconds())
	if err != nil {
		return fmt.Errorf("bbm: renewing the lease of job %d: %w", jobID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: job %d attempt %d", ErrJobLost, jobID, attempt)
	}
	return nil
}

// FinishJob implements Store. With tx set, the job row is updated in tx,
// so it must be a transaction on the database that holds Ferry's tables.
func (s *PostgresStore) FinishJob(ctx context.Context, tx pgx.Tx, r JobResult) (*Job, error) {
	var q storage.Querier = s.db
	if tx != nil {
		q = tx
	}
	job, err := scanJob(q.QueryRow(ctx, `UPDATE `+s.jobsTable+` SET status = 'finished',
			finished_at = now(), lease_expires_at = NULL, duration_us = $3, error_code = '', error_message = ''
		WHERE id = $1 AND status = 'running' AND attempts = $2
		RETURNING `+jobColumns, r.JobID, r.Attempt, r.Duration.Microseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: job %d attempt %d", ErrJobLost, r.JobID, r.Attempt)
	}
	var pgErr *pgconn.PgError
	if tx != nil && errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return nil, fmt.Errorf("%w: finishing job %d: the work's database has no bbm tables: %w", ErrNotTransactional, r.JobID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bbm: finishing job %d: %w", r.JobID, err)
	}
	return job, nil
}

// FailJob implements Store.
func (s *PostgresStore) FailJob(ctx context.Context, f JobFailure) (*Job, error) {
	var job *Job
	err := storage.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		job, err = scanJob(tx.QueryRow(ctx, `UPDATE `+s.jobsTable+` SET status = 'failed',
				attempts = attempts - CASE WHEN $4 THEN 1 ELSE 0 END,
				finished_at = now(), lease_expires_at = NULL, duration_us = $3,
				error_code = $5, error_message = $6
			WHERE id = $1 AND status = 'running' AND attempts = $2
			RETURNING `+jobColumns, f.JobID, f.Attempt, f.Duration.Microseconds(), f.Refund,
			f.Code, TruncateMessage(f.Message)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: job %d attempt %d", ErrJobLost, f.JobID, f.Attempt)
		}
		if err != nil || f.MigrationCode == CodeNone {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+s.migrationsTable+` SET status = 'failed', error_code = $2,
				error_message = $3, updated_at = now()
			WHERE id = $1 AND status IN ('active', 'running')`,
			job.MigrationID, f.MigrationCode, TruncateMessage(f.Message))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bbm: recording failure of job %d: %w", f.JobID, err)
	}
	return job, nil
}

// ReapExpiredJobs implements Store.
func (s *PostgresStore) ReapExpiredJobs(ctx context.Context, maxAttempts int) ([]*Job, error) {
	var jobs []*Job
	err := storage.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE `+s.jobsTable+` SET status = 'failed', finished_at = now(),
				lease_expires_at = NULL, error_code = 'job_abandoned',
				error_message = 'lease expired: the worker running this job died or stopped renewing its lease'
			WHERE status = 'running' AND lease_expires_at < now()
			RETURNING `+jobColumns)
		if err != nil {
			return err
		}
		if jobs, err = collect(rows, scanJob); err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Attempts < maxAttempts {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE `+s.migrationsTable+` SET status = 'failed', error_code = $2,
					error_message = $3, updated_at = now()
				WHERE id = $1 AND status IN ('active', 'running') AND on_failure = 'fail_fast'`, j.MigrationID, CodeMaxJobAttemptsReached,
				fmt.Sprintf("job %d [%s, %s] abandoned on its last attempt (%d)", j.ID, j.Start, j.End, j.Attempts)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbm: reaping expired jobs: %w", err)
	}
	return jobs, nil
}

// LastJob implements Store.
func (s *PostgresStore) LastJob(ctx context.Context, migrationID int64) (*Job, error) {
	j, err := scanJob(s.db.QueryRow(ctx, `SELECT `+jobColumns+` FROM `+s.jobsTable+`
		WHERE migration_id = $1 ORDER BY id DESC LIMIT 1`, migrationID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bbm: reading the last job of migration %d: %w", migrationID, err)
	}
	return j, nil
}

// UnfinishedJobs implements Store.
func (s *PostgresStore) UnfinishedJobs(ctx context.Context, migrationID int64) ([]*Job, error) {
	return s.jobs(ctx, `SELECT `+jobColumns+` FROM `+s.jobsTable+`
		WHERE migration_id = $1 AND status <> 'finished' ORDER BY id`, migrationID)
}

// Jobs implements Store.
func (s *PostgresStore) Jobs(ctx context.Context, migrationID int64) ([]*Job, error) {
	return s.jobs(ctx, `SELECT `+jobColumns+` FROM `+s.jobsTable+` WHERE migration_id = $1 ORDER BY id`, migrationID)
}

// ListJobs implements Store. A listing of failed or running jobs reads
// the partial index of unfinished jobs; the others read the
// (migration_id, id) index.
func (s *PostgresStore) ListJobs(ctx context.Context, migrationID int64, opts JobListOptions) ([]*Job, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	args := []any{migrationID, opts.After, opts.Limit}
	filter := ""
	switch opts.Status {
	case "":
	case JobFinished:
		filter, args = ` AND status = $4`, append(args, string(opts.Status))
	default: // the redundant condition lets the planner use the partial index
		filter, args = ` AND status = $4 AND status <> 'finished'`, append(args, string(opts.Status))
	}
	return s.jobs(ctx, `SELECT `+jobColumns+` FROM `+s.jobsTable+`
		WHERE migration_id = $1 AND id > $2`+filter+` ORDER BY id LIMIT $3`, args...)
}

func (s *PostgresStore) jobs(ctx context.Context, sql string, args ...any) ([]*Job, error) {
	migrationID := args[0]
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("bbm: listing jobs of migration %d: %w", migrationID, err)
	}
	jobs, err := collect(rows, scanJob)
	if err != nil {
		return nil, fmt.Errorf("bbm: listing jobs of migration %d: %w", migrationID, err)
	}
	return jobs, nil
}

// JobStats implements Store.
func (s *PostgresStore) JobStats(ctx context.Context, migrationID int64) (JobStats, error) {
	var st JobStats
	var first, last *time.Time
	err := s.db.QueryRow(ctx, `SELECT count(j.id),
			count(*) FILTER (WHERE j.status = 'running'),
			count(*) FILTER (WHERE j.status = 'finished'),
			count(*) FILTER (WHERE j.status = 'failed'),
			COALESCE(sum(j.row_count) FILTER (WHERE j.status = 'finished'), 0)::bigint,
			COALESCE(sum(j.row_count), 0)::bigint,
			min(j.started_at), max(j.finished_at) FILTER (WHERE j.status = 'finished'),
			COALESCE((SELECT l.end_key = m.upper_key FROM `+s.jobsTable+` l WHERE l.migration_id = m.id
				ORDER BY l.id DESC LIMIT 1), false)
		FROM `+s.migrationsTable+` m LEFT JOIN `+s.jobsTable+` j ON j.migration_id = m.id
		WHERE m.id = $1 GROUP BY m.id`, migrationID).
		Scan(&st.Total, &st.Running, &st.Finished, &st.Failed, &st.RowsDone, &st.RowsCut, &first, &last, &st.AllCut)
	if errors.Is(err, pgx.ErrNoRows) {
		return JobStats{}, fmt.Errorf("%w: id %d", ErrMigrationNotFound, migrationID)
	}
	if err != nil {
		return JobStats{}, fmt.Errorf("bbm: summing jobs of migration %d: %w", migrationID, err)
	}
	st.FirstStarted, st.LastFinished = deref(first), deref(last)
	return st, nil
}
