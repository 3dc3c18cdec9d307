package bbm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/jackc/pgx/v5/pgconn"
)

// FindJob implements Handler.FindJob.
func (e *engine) FindJob(ctx context.Context, store Store) (*Job, error) {
	if err := e.reap(ctx, store); err != nil {
		return nil, err
	}
	only := onlyFrom(ctx)

	// Failed migrations first: a worker allowed more attempts than the one
	// that gave up takes their failed jobs up again.
	failed, err := store.Migrations(ctx, StatusFailed)
	if err != nil {
		return nil, err
	}
	for _, m := range failed {
		if m.ErrorCode != CodeMaxJobAttemptsReached || !only.has(m.Name) {
			continue // the others need a fix and RetryFailed, not another attempt
		}
		if _, ok := e.works.get(m.WorkName); !ok {
			continue // another worker's; this one could only fail it again
		}
		jobs, err := store.UnfinishedJobs(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		if j, _ := e.retryable(jobs); j != nil {
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
		if !only.has(m.Name) {
			continue
		}
		if _, ok := e.works.get(m.WorkName); !ok {
			e.leftAlone(ctx, m)
			continue
		}
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

// reap takes over the jobs of dead workers (expired leases), at most once
// per reapInterval per worker: it is one UPDATE, but every job of every
// goroutine would run it otherwise.
func (e *engine) reap(ctx context.Context, store Store) error {
	e.mu.Lock()
	if time.Since(e.lastReap) < reapInterval {
		e.mu.Unlock()
		return nil
	}
	e.lastReap = time.Now()
	e.mu.Unlock()
	reaped, err := store.ReapExpiredJobs(ctx, e.o.MaxJobAttempts)
	if err != nil {
		return err
	}
	for _, j := range reaped {
		touch(ctx, j.MigrationID)
		e.log.WarnContext(ctx, "took over a job whose worker died", "migration_id", j.MigrationID,
			"job", j.ID, "start", j.Start, "end", j.End, "attempt", j.Attempts)
	}
	return nil
}

const reapInterval = time.Second

// leftAlone reports, once per worker, a migration whose Work this worker
// does not have: another service or version of the host runs it.
func (e *engine) leftAlone(ctx context.Context, m *Migration) {
	e.mu.Lock()
	_, seen := e.skipped[m.ID]
	if !seen && len(e.skipped) < maxSizerEntries {
		e.skipped[m.ID] = m.Name
	}
	e.mu.Unlock()
	if !seen {
		e.log.WarnContext(ctx, "leaving a migration alone: its Work is not registered on this worker",
			"migration", m.Name, "work", m.WorkName, "registered", e.works.names())
	}
}

func statusRank(s Status) int {
	if s == StatusRunning {
		return 0
	}
	return 1
}

// retryable is the first failed job (in key order) with attempts left whose
// retry backoff has passed; later reports one whose backoff has not.
func (e *engine) retryable(jobs []*Job) (job *Job, later bool) {
	for _, j := range jobs {
		if j.Status != JobFailed || j.Attempts >= e.o.MaxJobAttempts {
			continue
		}
		if j.Attempts > 0 && time.Since(j.FinishedAt) < (backoff.Policy{Base: e.o.RetryBackoff, Max: e.o.MaxRetryBackoff}).Delay(j.Attempts-1) {
			later = true
			continue
		}
		return j, false
	}
	return nil, later
}

// nextJob returns m's next job: per m's FailurePolicy a failed one to
// retry or a new range. With neither it finishes or fails m, or reports
// wait when jobs still run or wait for their retry backoff.
func (e *engine) nextJob(ctx context.Context, store Store, m *Migration) (*Job, bool, error) {
	jobs, err := store.UnfinishedJobs(ctx, m.ID)
	if err != nil {
		return nil, false, err
	}
	retry, later := e.retryable(jobs)
	var running, exhausted, failed int
	for _, j := range jobs {
		switch {
		case j.Status == JobRunning:
			running++
		case j.Attempts >= e.o.MaxJobAttempts:
			exhausted++
			failed++
		default:
			failed++
		}
	}
	if retry != nil && m.OnFailure == FailFast {
		retry.Migration = m
		return retry, false, nil
	}
	if exhausted > 0 && m.OnFailure == FailFast {
		return nil, false, e.failMigration(ctx, store, m, CodeMaxJobAttemptsReached, failedRanges(jobs, e.o.MaxJobAttempts))
	}
	if later && m.OnFailure == FailFast {
		return nil, true, nil
	}
	if failed >= FailedRatioMinJobs/2 && m.OnFailure == FinishOthers {
		st, err := store.JobStats(ctx, m.ID)
		if err != nil {
			return nil, false, err
		}
		if st.Total >= FailedRatioMinJobs && 2*st.Failed > st.Total {
			msg := fmt.Sprintf("stopped early: %d of %d jobs failed; ", st.Failed, st.Total) + failedRanges(jobs, 0)
			return nil, false, e.failMigration(ctx, store, m, CodeMaxJobAttemptsReached, msg)
		}
	}

	job, err := e.nextRange(ctx, store, m)
	if err != nil {
		if code := configCode(err); code != CodeNone {
			return nil, false, e.failMigration(ctx, store, m, code, err.Error())
		}
		return nil, false, err
	}
	switch {
	case job != nil:
		return job, false, nil
	case retry != nil:
		retry.Migration = m
		return retry, false, nil
	case later || running > 0:
		return nil, true, nil
	case exhausted > 0:
		return nil, false, e.failMigration(ctx, store, m, CodeMaxJobAttemptsReached, failedRanges(jobs, e.o.MaxJobAttempts))
	}
	done, err := store.FinishMigration(ctx, m.ID)
	if err != nil {
		return nil, false, err
	}
	if !done {
		return nil, true, nil // a job appeared meanwhile
	}
	e.finished.Add(1)
	e.forget(m.ID)
	if fm, err := store.Migration(ctx, m.ID); err == nil {
		m = fm
	}
	e.log.InfoContext(ctx, "migration finished", "migration", m.Name, "migration_id", m.ID)
	e.obs.MigrationEnded(ctx, m)
	return nil, false, nil
}

// failedRanges lists the failed jobs (those with at least minAttempts
// attempts) for a migration's error message.
func failedRanges(jobs []*Job, minAttempts int) string {
	var list []string
	n := 0
	for _, j := range jobs {
		if j.Status != JobFailed || j.Attempts < minAttempts {
			continue
		}
		n++
		if len(list) < 10 {
			list = append(list, fmt.Sprintf("job %d [%s, %s] after %d attempts: %s", j.ID, j.Start, j.End, j.Attempts, j.ErrorMessage))
		}
	}
	s := fmt.Sprintf("%d ranges failed: ", n) + strings.Join(list, "; ")
	if n > len(list) {
		s += fmt.Sprintf("; and %d more", n-len(list))
	}
	return s
}

// nextRange cuts m's next new range, after its last job, or returns nil
// when every range has been cut.
func (e *engine) nextRange(ctx context.Context, store Store, m *Migration) (*Job, error) {
	last, err := store.LastJob(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	var after Key
	if last != nil {
		if last.End.Equal(m.Upper) {
			return nil, nil
		}
		after = last.End
	}
	t := Target{Schema: m.Schema, Table: m.Table, Column: m.Column, KeyColumns: m.KeyColumns,
		KeyTypes: m.KeyTypes, Strategy: m.Strategy}
	if m.Strategy == NullKeys {
		// Check again: the partial index may have been dropped since.
		if _, err := e.catalog.Describe(ctx, TableName{Schema: m.Schema, Name: m.Table}, NullKeys, m.Column, nil); err != nil {
			return nil, err
		}
	}
	size := e.sizes.size(m)
	start, end, rows, ok, err := e.catalog.NextBatch(ctx, t, after, m.Lower, m.Upper, size)
	if err != nil || !ok {
		return nil, err
	}
	return &Job{MigrationID: m.ID, Start: start, End: end, BatchSize: size, Rows: rows, After: after, Migration: m}, nil
}

// configCode is the migration failure code of an error that retrying
// cannot fix, or CodeNone.
func configCode(err error) ErrorCode {
	switch {
	case errors.Is(err, ErrInvalidTable):
		return CodeInvalidTable
	case errors.Is(err, ErrInvalidColumn), errors.Is(err, ErrNullableKey):
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
	e.forget(m.ID)
	touch(ctx, m.ID)
	e.log.ErrorContext(ctx, "migration failed", "migration", m.Name, "migration_id", m.ID, "code", code, "error", msg)
	e.obs.MigrationEnded(ctx, fm)
	return nil
}

// onlyKey carries the names a Run is limited to.
type onlyKey struct{}

// nameSet is a set of migration names; the nil set has every name.
type nameSet map[string]bool

func (s nameSet) has(name string) bool { return s == nil || s[name] }

func withOnly(ctx context.Context, names []string) context.Context {
	if len(names) == 0 {
		return ctx
	}
	s := nameSet{}
	for _, n := range names {
		s[n] = true
	}
	return context.WithValue(ctx, onlyKey{}, s)
}

func onlyFrom(ctx context.Context) nameSet {
	s, _ := ctx.Value(onlyKey{}).(nameSet)
	return s
}
