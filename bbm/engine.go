package bbm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/storage"
)

// engine is what SyncWorker and Worker share: the registered Work, the
// options, and the FindJob and ExecuteJob steps.
type engine struct {
	db       storage.Beginner
	store    Store
	catalog  Catalog
	handler  Handler
	log      *slog.Logger
	obs      Observer
	throttle Throttler
	o        Options
	works    workSet
	sizes    *sizer
	finished atomic.Int64 // migrations finished by this worker in the current run
	err      error        // a setup problem, reported by Run and Admin
}

func newEngine(db storage.Beginner, o Options, component string) *engine {
	o = o.withDefaults()
	e := &engine{db: db, o: o, store: o.Store, catalog: o.Catalog, handler: o.Handler,
		obs: o.Observer, throttle: o.Throttler, sizes: newSizer(o.Adaptive),
		log: o.Logger.With("component", component)}
	if e.store == nil {
		if db == nil {
			e.err = fmt.Errorf("%w: pass a database or Options.Store", ErrNoDatabase)
		} else {
			e.store = NewPostgresStore(db, PostgresStoreOptions{})
		}
	}
	if e.catalog == nil {
		if db == nil {
			e.err = fmt.Errorf("%w: pass a database or Options.Catalog", ErrNoDatabase)
		} else {
			e.catalog = NewPostgresCatalog(db)
		}
	}
	if e.obs == nil {
		e.obs = ObserverFuncs{}
	}
	return e
}

// detached is a context for recording an outcome: it outlives the
// cancellation of ctx (the work is done, its result must be kept) but not
// forever.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

func (e *engine) release(ctx context.Context, l Lock) {
	rctx, cancel := detached(ctx)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		e.log.WarnContext(ctx, "releasing the worker lock", "error", err)
	}
}

// awaitThrottle returns once the Throttler lets jobs run.
func (e *engine) awaitThrottle(ctx context.Context) error {
	if e.throttle == nil {
		return nil
	}
	for n := 0; ; n++ {
		d, err := e.throttle.Throttle(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			d = Decision{Hold: true, Reason: err.Error()}
		}
		if !d.Hold {
			return nil
		}
		wait := d.RetryAfter
		if wait <= 0 {
			wait = backoff(e.o.Interval, e.o.MaxBackoff, n)
		}
		e.log.InfoContext(ctx, "throttled: holding jobs", "reason", d.Reason, "wait", wait)
		e.obs.Throttled(ctx, ThrottleEvent{Reason: d.Reason, Wait: wait})
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

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

// ExecuteJob implements Handler.ExecuteJob.
func (e *engine) ExecuteJob(ctx context.Context, store Store, job *Job) error {
	m := job.Migration
	if m == nil {
		var err error
		if m, err = store.Migration(ctx, job.MigrationID); err != nil {
			return err
		}
	}
	work, ok := e.works.get(m.WorkName)
	if !ok {
		// Retrying cannot help until a worker with this Work runs it.
		err := fmt.Errorf("%w: %q is not registered on this worker (registered: %v)", ErrUnknownWork, m.WorkName, e.works.names())
		if ferr := e.failMigration(ctx, store, m, CodeInvalidJobSignature, err.Error()); ferr != nil {
			return errors.Join(err, ferr)
		}
		return &JobError{Migration: m.Name, JobID: job.ID, Start: job.MinKey, End: job.MaxKey, Attempt: job.Attempts,
			Code: CodeInvalidJobSignature, MigrationCode: CodeInvalidJobSignature, Err: err}
	}
	claimed, err := store.ClaimJob(ctx, Claim{MigrationID: m.ID, JobID: job.ID, MinKey: job.MinKey,
		MaxKey: job.MaxKey, BatchSize: job.BatchSize, Attempts: job.Attempts, Lease: e.o.JobTimeout + e.o.LeaseGrace})
	if err != nil {
		return err
	}
	claimed.Migration = m
	return e.run(ctx, store, work, claimed)
}

// run executes a claimed attempt and records its outcome.
func (e *engine) run(ctx context.Context, store Store, work Work, job *Job) error {
	m := job.Migration
	log := e.log.With("migration", m.Name, "job", job.ID, "start", job.MinKey, "end", job.MaxKey, "attempt", job.Attempts)
	ev := JobEvent{Migration: m.Name, MigrationID: m.ID, JobID: job.ID, Start: job.MinKey, End: job.MaxKey,
		Attempt: job.Attempts, BatchSize: job.BatchSize}
	log.InfoContext(ctx, "job started", "batch_size", job.BatchSize)
	e.obs.JobStarted(ctx, ev)

	b := Batch{Migration: m.Name, Table: m.TableIdent(), Column: m.Column, KeyColumn: m.KeyColumn,
		Strategy: m.Strategy, Start: job.MinKey, End: job.MaxKey, Size: job.BatchSize, Attempt: job.Attempts}
	took, workErr := e.runWork(ctx, work, b)
	ev.Duration = took

	rctx, cancel := detached(ctx)
	defer cancel()
	keys := job.Keys()
	if m.Strategy == NullKeys {
		keys = int64(job.BatchSize)
	}
	if workErr == nil {
		if _, err := store.FinishJob(rctx, JobResult{JobID: job.ID, Attempt: job.Attempts, Duration: took}); err != nil {
			// The work is committed; the range runs again when retaken,
			// which an idempotent Work allows.
			log.ErrorContext(ctx, "job done but not recorded", "duration", took, "error", err)
			return err
		}
		ev.NextBatchSize = e.sizes.observe(m, keys, took, false)
		log.InfoContext(ctx, "job finished", "duration", took, "next_batch_size", ev.NextBatchSize)
		e.obs.JobFinished(ctx, ev)
		return nil
	}

	code := CodeJobFailed
	switch {
	case errors.Is(workErr, ErrWorkPanic):
		code = CodeJobPanicked
	case ctx.Err() != nil:
		code = CodeJobCancelled
	case errors.Is(workErr, ErrJobTimeout):
		code = CodeJobTimeout
	}
	migCode := configCode(workErr)
	refund := code == CodeJobCancelled && migCode == CodeNone
	if !refund && migCode == CodeNone && job.Attempts >= e.o.MaxJobAttempts {
		migCode = CodeMaxJobAttemptsReached
	}
	je := &JobError{Migration: m.Name, JobID: job.ID, Start: job.MinKey, End: job.MaxKey, Attempt: job.Attempts,
		Code: code, MigrationCode: migCode, Err: workErr}
	_, recErr := store.FailJob(rctx, JobFailure{JobID: job.ID, Attempt: job.Attempts, Duration: took,
		Code: code, Message: workErr.Error(), Refund: refund, MigrationCode: migCode})
	ev.Err = je
	ev.NextBatchSize = e.sizes.size(m)
	if code == CodeJobTimeout {
		// Too big for the timeout; other failures say nothing about size.
		ev.NextBatchSize = e.sizes.observe(m, keys, took, true)
	}
	level := slog.LevelWarn
	if migCode != CodeNone {
		level = slog.LevelError
	}
	log.Log(ctx, level, "job failed", "duration", took, "code", code, "migration_code", migCode, "error", workErr)
	if recErr != nil {
		log.ErrorContext(ctx, "recording the job failure", "error", recErr)
		return errors.Join(je, recErr)
	}
	e.obs.JobFinished(ctx, ev)
	if migCode != CodeNone {
		e.sizes.forget(m.ID)
		if fm, err := store.Migration(rctx, m.ID); err == nil {
			e.obs.MigrationDone(ctx, fm)
		}
	}
	return je
}

// runWork runs w on b in a transaction under the job timeout, turning a
// panic into a *PanicError, and returns how long the transaction took.
func (e *engine) runWork(ctx context.Context, w Work, b Batch) (took time.Duration, err error) {
	jctx, cancel := context.WithTimeoutCause(ctx, e.o.JobTimeout, ErrJobTimeout)
	defer cancel()
	began := time.Now()
	defer func() {
		took = time.Since(began)
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(jctx), ErrJobTimeout) {
			err = fmt.Errorf("%w after %s: %w", ErrJobTimeout, e.o.JobTimeout, err)
		}
	}()
	if e.db == nil {
		return 0, w.Do(jctx, nil, b)
	}
	// statement_timeout is a server-side backstop, a little after the
	// client-side deadline that normally cancels first.
	stmtTimeout := fmt.Sprintf("%dms", (e.o.JobTimeout + time.Second).Milliseconds())
	return 0, storage.InTx(jctx, e.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(jctx, `SELECT set_config('statement_timeout', $1, true)`, stmtTimeout); err != nil {
			return err
		}
		return w.Do(jctx, tx, b)
	})
}
