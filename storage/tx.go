package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"
)

// TxOptions tunes InTxWith. The zero value gives InTx's behaviour.
type TxOptions struct {
	// Tx is passed to BeginTx when the Beginner supports it (pools and
	// connections). Default: the server's default isolation level.
	Tx pgx.TxOptions
	// MaxRetries is how many times a transaction that failed with a
	// serialization failure or a deadlock is run again. Default 3; a
	// negative value disables retries.
	MaxRetries int
	// RetryBackoff is the delay before the first retry; it doubles each
	// time (up to 1024 times itself), with equal jitter (between half and
	// all of it). Default 10ms.
	RetryBackoff time.Duration
}

const (
	defaultTxRetries      = 3
	defaultTxRetryBackoff = 10 * time.Millisecond
)

// InTx runs fn in a transaction on db: it commits when fn returns nil, rolls
// back when fn returns an error or panics (and then re-panics), and runs fn
// again, up to 3 times, when the transaction fails with a serialization
// failure or a deadlock. fn must therefore be safe to run more than once.
// When db is itself a pgx.Tx the transaction is a savepoint and is never
// retried, because the outer transaction is aborted anyway.
func InTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	return InTxWith(ctx, db, TxOptions{}, fn)
}

// InTxWith is InTx with options.
func InTxWith(ctx context.Context, db Beginner, opts TxOptions, fn func(tx pgx.Tx) error) error {
	retries := opts.MaxRetries
	if retries == 0 {
		retries = defaultTxRetries
	}
	if _, nested := db.(pgx.Tx); nested || retries < 0 {
		retries = 0
	}
	base := opts.RetryBackoff
	if base <= 0 {
		base = defaultTxRetryBackoff
	}
	retry := backoff.Policy{Base: base, Max: base << 10}
	for attempt := 0; ; attempt++ {
		err := runTx(ctx, db, opts.Tx, fn)
		if err == nil || attempt >= retries || !IsRetryable(err) {
			return err
		}
		delay := backoff.Equal(retry.Delay(attempt))
		if werr := wait.Sleep(ctx, delay); werr != nil {
			return fmt.Errorf("storage: retrying transaction: %w (after %w)", werr, err)
		}
	}
}

func runTx(ctx context.Context, db Beginner, txOpts pgx.TxOptions, fn func(tx pgx.Tx) error) (err error) {
	var tx pgx.Tx
	if b, ok := db.(txOptionsBeginner); ok && txOpts != (pgx.TxOptions{}) {
		tx, err = b.BeginTx(ctx, txOpts)
	} else {
		tx, err = db.Begin(ctx)
	}
	if err != nil {
		return fmt.Errorf("storage: begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			// The rollback must not be skipped because ctx is already done.
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			return errors.Join(err, fmt.Errorf("storage: rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// IsRetryable reports whether err is a serialization failure (40001) or a
// deadlock (40P01), the errors after which a whole transaction may succeed
// when simply run again.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "40001" || pgErr.Code == "40P01"
}
