package bbm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/wait"
	"github.com/ferryhq/ferry/storage"
)

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
		// Another worker's migration (FindJob leaves these alone): do not
		// touch it.
		return fmt.Errorf("%w: %q is not registered on this worker (registered: %v)", ErrUnknownWork, m.WorkName, e.works.names())
	}
	claimed, err := store.ClaimJob(ctx, Claim{MigrationID: m.ID, JobID: job.ID, Attempts: job.Attempts,
		After: job.After, Start: job.Start, End: job.End, BatchSize: job.BatchSize, Rows: job.Rows,
		Lease: e.o.JobLease, Limit: e.o.Parallelism, Works: e.works.names()})
	if err != nil {
		return err
	}
	claimed.Migration = m
	return e.run(ctx, store, work, claimed)
}

// run executes a claimed attempt and records its outcome.
func (e *engine) run(ctx context.Context, store Store, work Work, job *Job) error {
	m := job.Migration
	log := e.log.With("migration", m.Name, "job", job.ID, "start", job.Start, "end", job.End, "attempt", job.Attempts)
	ev := JobEvent{JobStartEvent: JobStartEvent{Migration: m.Name, MigrationID: m.ID, JobID: job.ID, Start: job.Start,
		End: job.End, Attempt: job.Attempts, BatchSize: job.BatchSize, Rows: int64(job.Rows)}}
	log.InfoContext(ctx, "job started", "batch_size", job.BatchSize, "rows", job.Rows, "delivery", deliveryFor(e.db, work))
	parent := ctx
	ctx = e.obs.JobStart(ctx, ev.JobStartEvent)

	b := Batch{Migration: m.Name, Table: m.TableIdent(), Column: m.Column, KeyColumns: m.KeyColumns,
		KeyTypes: m.KeyTypes, Strategy: m.Strategy, Start: job.Start, End: job.End, Size: job.Rows,
		Attempt: job.Attempts, Args: m.Args}
	took, workErr := e.attempt(ctx, store, work, job, b)
	ev.Duration = took

	rctx, cancel := detached(ctx)
	defer cancel()
	var unrecorded *recordError
	switch {
	case workErr == nil:
		ev.NextBatchSize = e.sizes.observe(m, int64(job.Rows), took, false)
		e.pace.observe(m.ID, int64(job.Rows), took)
		log.InfoContext(ctx, "job finished", "duration", took, "next_batch_size", ev.NextBatchSize)
		e.obs.JobEnd(ctx, ev)
		return nil
	case errors.Is(workErr, ErrJobLost):
		// Another worker took the job over (this one stalled past its
		// lease): the attempt is not this worker's to record. With
		// exactly-once delivery its changes rolled back.
		log.WarnContext(ctx, "job taken over by another worker", "duration", took, "error", workErr)
		ev.Err = workErr
		ev.NextBatchSize = e.sizes.size(m)
		e.obs.JobEnd(ctx, ev)
		return workErr
	case errors.As(workErr, &unrecorded) && unrecorded.committed:
		// At-least-once: the work is done; the range runs again when
		// retaken, which such a Work allows.
		log.ErrorContext(ctx, "job done but not recorded", "duration", took, "error", workErr)
		ev.Err = workErr
		ev.NextBatchSize = e.sizes.size(m)
		e.obs.JobEnd(ctx, ev)
		return workErr
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
	if !refund && migCode == CodeNone && job.Attempts >= e.o.MaxJobAttempts && m.OnFailure == FailFast {
		// FinishOthers fails the migration later, when nothing else is
		// left (FindJob).
		migCode = CodeMaxJobAttemptsReached
	}
	je := &JobError{Migration: m.Name, JobID: job.ID, Start: job.Start, End: job.End, Attempt: job.Attempts,
		Code: code, MigrationCode: migCode, Err: workErr}
	_, recErr := store.FailJob(rctx, JobFailure{JobID: job.ID, Attempt: job.Attempts, Duration: took,
		Code: code, Message: workErr.Error(), Refund: refund, MigrationCode: migCode})
	ev.Err = je
	ev.NextBatchSize = e.sizes.size(m)
	if code == CodeJobTimeout {
		// Too big for the timeout; other failures say nothing about size.
		ev.NextBatchSize = e.sizes.observe(m, int64(job.Rows), took, true)
	}
	level := slog.LevelWarn
	if migCode != CodeNone {
		level = slog.LevelError
	}
	log.Log(ctx, level, "job failed", "duration", took, "code", code, "migration_code", migCode, "error", workErr)
	if recErr != nil {
		log.ErrorContext(ctx, "recording the job failure", "error", recErr)
		e.obs.JobEnd(ctx, ev)
		return errors.Join(je, recErr)
	}
	e.obs.JobEnd(ctx, ev)
	if migCode != CodeNone {
		e.forget(m.ID)
		if fm, err := store.Migration(rctx, m.ID); err == nil {
			e.obs.MigrationEnded(parent, fm)
		}
	}
	return je
}

// deliveryFor is the delivery a Work gets: without a database there is no
// transaction to join, so at-least-once.
func deliveryFor(db storage.Handle, w Work) Delivery {
	if db == nil {
		return DeliveryAtLeastOnce
	}
	return DeliveryOf(w)
}

// recordError is a failure to record a job finished. committed says the
// Work's changes are kept anyway (at-least-once delivery); otherwise they
// rolled back with the record.
type recordError struct {
	err       error
	committed bool
}

func (e *recordError) Error() string { return e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// attempt runs w on b under the job timeout, with the job's lease renewed
// meanwhile, turning a panic into a *PanicError, and records the job
// finished: inside the Work's transaction for DeliveryExactlyOnce, after Do
// for DeliveryAtLeastOnce (and without a database). It returns how long the
// Work took.
func (e *engine) attempt(ctx context.Context, store Store, w Work, job *Job, b Batch) (took time.Duration, err error) {
	tctx, cancelTimeout := context.WithTimeoutCause(ctx, e.o.JobTimeout, ErrJobTimeout)
	defer cancelTimeout()
	jctx, lose := context.WithCancelCause(tctx)
	defer lose(nil)
	stopRenewing := e.renewLease(jctx, store, job, lose)
	defer stopRenewing()
	began := time.Now()
	result := func() JobResult {
		took = time.Since(began)
		return JobResult{JobID: job.ID, Attempt: job.Attempts, Duration: took}
	}
	defer func() {
		if took == 0 {
			took = time.Since(began)
		}
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
		var re *recordError
		switch {
		case err == nil || errors.As(err, &re) || ctx.Err() != nil:
		case errors.Is(context.Cause(jctx), ErrJobLost):
			err = fmt.Errorf("%w: %w", context.Cause(jctx), err)
		case errors.Is(context.Cause(jctx), ErrJobTimeout):
			err = fmt.Errorf("%w after %s: %w", ErrJobTimeout, e.o.JobTimeout, err)
		}
	}()
	if deliveryFor(e.db, w) == DeliveryAtLeastOnce {
		var db storage.Querier
		if e.db != nil {
			db = e.db
		}
		if err := w.Do(jctx, db, b); err != nil {
			return 0, err
		}
		stopRenewing()
		rctx, rcancel := detached(ctx)
		defer rcancel()
		if _, err := store.FinishJob(rctx, nil, result()); err != nil {
			return took, &recordError{err: err, committed: true}
		}
		return took, nil
	}
	// statement_timeout is a server-side backstop, a little after the
	// client-side deadline that normally cancels first.
	stmtTimeout := fmt.Sprintf("%dms", (e.o.JobTimeout + time.Second).Milliseconds())
	err = storage.InTx(jctx, e.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(jctx, `SELECT set_config('statement_timeout', $1, true)`, stmtTimeout); err != nil {
			return err
		}
		if err := w.Do(jctx, tx, b); err != nil {
			return err
		}
		// The renewals stop before the job row is updated in this
		// transaction: one waiting on that row lock would see the job
		// finished and take it for lost.
		stopRenewing()
		if _, err := store.FinishJob(jctx, tx, result()); err != nil {
			return &recordError{err: err}
		}
		return nil
	})
	return took, err
}

// renewLease renews job's lease every JobLease/3 until the returned stop is
// called (it may be called more than once, and waits for a renewal in
// flight). When a renewal finds the attempt taken over, lose cancels the
// job with ErrJobLost.
func (e *engine) renewLease(ctx context.Context, store Store, job *Job, lose context.CancelCauseFunc) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := max(e.o.JobLease/3, time.Millisecond)
		for wait.Sleep(rctx, every) == nil {
			err := store.RenewLease(rctx, job.ID, job.Attempts, e.o.JobLease)
			if errors.Is(err, ErrJobLost) {
				lose(err)
				return
			}
			if err != nil && rctx.Err() == nil {
				e.log.WarnContext(rctx, "renewing the job lease", "job", job.ID, "error", err)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}
