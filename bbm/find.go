package bbm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"
)

// FindJob implements Handler.FindJob.
func (e *engine) FindJob(ctx context.Context, store Store) (*Job, error) {
	reaped, err := store.ReapExpiredJobs(ctx, e.o.MaxJobAttempts)
	if err != nil {
		return nil, err
	}
	for _, j := range reaped {
		e.log.WarnContext(ctx, "took over a job whose worker died", "migration_id", j.MigrationID,
			"job", j.ID, "start", j.MinKey, "end", j.MaxKey, "attempt", j.Attempts)
	}

	// Failed migrations first: a worker allowed more attempts than the one
	// that gave up takes their failed jobs up again.
	failed, err := store.Migrations(ctx, StatusFailed)
	if err != nil {
		return nil, err
	}
	for _, m := range failed {
		if m.ErrorCode != CodeMaxJobAttemptsReached {
			continue // needs a fix and RetryFailed, not another attempt
		}
		if _, ok := e.works.get(m.WorkName); !ok {
			continue // another worker's; this one could only fail it again
		}
		jobs, err := store.UnfinishedJobs(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		if j := e.retryable(jobs); j != nil {
			e.log.InfoContext(ctx, "retrying a job of a failed migration", "migration", m.Name, "job", j.ID)
			j.Migration = m
			return j, nil
		}
	}

	ms, err := store.Migrations(ctx, StatusRunning, StatusActive)
	if err != nil {
		return nil, err
	}
	// Running before active, each by ID: finish what was started first.
	slices.SortStableFunc(ms, func(a, b *Migration) int {
		return cmp.Compare(statusRank(a.Status), statusRank(b.Status))
	})
	waiting := false
	for _, m := range ms {
		job, wait, err := e.nextJob(ctx, store, m)
		if err != nil {
			return nil, err
		}
		if job != nil {
			return job, nil
		}
		waiting = waiting || wait
	}
	if waiting {
		return nil, ErrNoJobReady
	}
	return nil, nil
}

func statusRank(s Status) int {
	if s == StatusRunning {
		return 0
	}
	return 1
}

// retryable is the first failed job (by key) with attempts left.
func (e *engine) retryable(jobs []*Job) *Job {
	for _, j := range jobs {
		if j.Status == JobFailed && j.Attempts < e.o.MaxJobAttempts {
			return j
		}
	}
	return nil
}

// nextJob returns m's next job: a failed one to retry, else a new range.
// With neither, it finishes m, or reports wait when jobs still run.
func (e *engine) nextJob(ctx context.Context, store Store, m *Migration) (*Job, bool, error) {
	jobs, err := store.UnfinishedJobs(ctx, m.ID)
	if err != nil {
		return nil, false, err
	}
	if j := e.retryable(jobs); j != nil {
		j.Migration = m
		return j, false, nil
	}
	running := 0
	for _, j := range jobs {
		if j.Status == JobRunning {
			running++
			continue
		}
		// A failed job without attempts left (the limit was lowered since).
		msg := fmt.Sprintf("job %d [%d, %d] failed %d times: %s", j.ID, j.MinKey, j.MaxKey, j.Attempts, j.ErrorMessage)
		return nil, false, e.failMigration(ctx, store, m, CodeMaxJobAttemptsReached, msg)
	}
	start, end, size, ok, err := e.nextRange(ctx, store, m)
	if err != nil {
		if code := configCode(err); code != CodeNone {
			return nil, false, e.failMigration(ctx, store, m, code, err.Error())
		}
		return nil, false, err
	}
	if ok {
		return &Job{MigrationID: m.ID, MinKey: start, MaxKey: end, BatchSize: size, Migration: m}, false, nil
	}
	if running > 0 {
		return nil, true, nil
	}
	done, err := store.FinishMigration(ctx, m.ID)
	if err != nil {
		return nil, false, err
	}
	if !done {
		return nil, true, nil // a job appeared meanwhile
	}
	e.finished.Add(1)
	e.sizes.forget(m.ID)
	if fm, err := store.Migration(ctx, m.ID); err == nil {
		m = fm
	}
	e.log.InfoContext(ctx, "migration finished", "migration", m.Name, "migration_id", m.ID)
	e.obs.MigrationDone(ctx, m)
	return nil, false, nil
}

// nextRange cuts the next new range of m, after its last job.
func (e *engine) nextRange(ctx context.Context, store Store, m *Migration) (start, end int64, size int, ok bool, err error) {
	from := m.MinKey
	last, err := store.LastJob(ctx, m.ID)
	if err != nil {
		return 0, 0, 0, false, err
	}
	if last != nil {
		if last.MaxKey >= m.MaxKey {
			return 0, 0, 0, false, nil
		}
		from = last.MaxKey + 1
	}
	size = e.sizes.size(m)
	switch m.Strategy {
	case IntegerRange:
		end = m.MaxKey
		if m.MaxKey-from >= int64(size) {
			end = from + int64(size) - 1
		}
		return from, end, size, true, nil
	case NullKeys:
		// Check again: the partial index may have been dropped since.
		t, err := e.catalog.Describe(ctx, TableName{Schema: m.Schema, Name: m.Table}, m.Column, NullKeys)
		if err != nil {
			return 0, 0, 0, false, err
		}
		start, end, ok, err = e.catalog.NextNullBatch(ctx, t, from, m.MaxKey, size)
		return start, end, size, ok, err
	}
	return 0, 0, 0, false, fmt.Errorf("%w: %q", ErrInvalidStrategy, m.Strategy)
}

// configCode is the migration failure code of an error that retrying
// cannot fix, or CodeNone.
func configCode(err error) ErrorCode {
	switch {
	case errors.Is(err, ErrInvalidTable):
		return CodeInvalidTable
	case errors.Is(err, ErrInvalidColumn):
		return CodeInvalidColumn
	case errors.Is(err, ErrMissingNullIndex), errors.Is(err, ErrInvalidStrategy):
		return CodeInvalidBatchingStrategy
	case errors.Is(err, ErrUnknownWork):
		return CodeInvalidJobSignature
	case errors.Is(err, ErrNotTransactional):
		return CodeInvalidDelivery
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42P01": // undefined_table
			return CodeInvalidTable
		case "42703": // undefined_column
			return CodeInvalidColumn
		}
	}
	return CodeNone
}

func (e *engine) failMigration(ctx context.Context, store Store, m *Migration, code ErrorCode, msg string) error {
	fm, err := store.SetMigrationStatus(ctx, m.ID, StatusChange{To: StatusFailed,
		From: []Status{StatusActive, StatusRunning}, Code: code, Message: msg})
	if errors.Is(err, ErrInvalidTransition) {
		return nil // paused or failed meanwhile
	}
	if err != nil {
		return err
	}
	e.sizes.forget(m.ID)
	e.log.ErrorContext(ctx, "migration failed", "migration", m.Name, "migration_id", m.ID, "code", code, "error", msg)
	e.obs.MigrationDone(ctx, fm)
	return nil
}
