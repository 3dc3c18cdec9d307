package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// Compile-time proof that the pgx types Ferry promises to accept do.
var (
	_ storage.Querier  = (*pgxpool.Pool)(nil)
	_ storage.Querier  = (*pgx.Conn)(nil)
	_ storage.Querier  = pgx.Tx(nil)
	_ storage.Beginner = (*pgxpool.Pool)(nil)
	_ storage.Beginner = (*pgx.Conn)(nil)
	_ storage.Beginner = pgx.Tx(nil)
	_ storage.Beginner = (*storage.DB)(nil)
)

func counterPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := storagetest.Pool(t)
	_, err := pool.Exec(context.Background(), `CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)`)
	require.NoError(t, err)
	return pool
}

func count(t *testing.T, q storage.Querier) int {
	t.Helper()
	var n int
	require.NoError(t, q.QueryRow(context.Background(), `SELECT n FROM counter`).Scan(&n))
	return n
}

func bump(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `UPDATE counter SET n = n + 1`)
	return err
}

func TestInTxCommitsOnNil(t *testing.T) {
	ctx := context.Background()
	pool := counterPool(t)
	require.NoError(t, storage.InTx(ctx, pool, func(tx pgx.Tx) error { return bump(ctx, tx) }))
	require.Equal(t, 1, count(t, pool))
}

func TestInTxRollsBackOnError(t *testing.T) {
	ctx := context.Background()
	pool := counterPool(t)
	boom := errors.New("boom")
	err := storage.InTx(ctx, pool, func(tx pgx.Tx) error {
		require.NoError(t, bump(ctx, tx))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 0, count(t, pool))
}

func TestInTxRollsBackOnPanicAndRepanics(t *testing.T) {
	ctx := context.Background()
	pool := counterPool(t)
	require.PanicsWithValue(t, "kaboom", func() {
		_ = storage.InTx(ctx, pool, func(tx pgx.Tx) error {
			require.NoError(t, bump(ctx, tx))
			panic("kaboom")
		})
	})
	require.Equal(t, 0, count(t, pool))
	// The connection went back to the pool in a usable state.
	require.NoError(t, storage.InTx(ctx, pool, func(tx pgx.Tx) error { return bump(ctx, tx) }))
	require.Equal(t, 1, count(t, pool))
}

func TestInTxRetriesSerializationFailuresBounded(t *testing.T) {
	ctx := context.Background()
	pool := counterPool(t)
	calls := 0
	err := storage.InTx(ctx, pool, func(tx pgx.Tx) error {
		calls++
		if err := bump(ctx, tx); err != nil {
			return err
		}
		if calls < 3 {
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls)
	require.Equal(t, 1, count(t, pool), "failed attempts must have been rolled back")

	calls = 0
	err = storage.InTx(ctx, pool, func(tx pgx.Tx) error {
		calls++
		return &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	})
	require.True(t, storage.IsRetryable(err))
	require.Equal(t, 4, calls, "one run plus three retries")
}

func TestInTxRealSerializationConflictSucceeds(t *testing.T) {
	ctx := context.Background()
	pool := counterPool(t)
	opts := storage.TxOptions{Tx: pgx.TxOptions{IsoLevel: pgx.Serializable}, MaxRetries: 20}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			errs <- storage.InTxWith(ctx, pool, opts, func(tx pgx.Tx) error {
				var n int
				if err := tx.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `UPDATE counter SET n = $1`, n+1)
				return err
			})
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
	require.Equal(t, 8, count(t, pool), "no lost update under serializable retries")
}

func TestInTxNestedUsesSavepointWithoutRetry(t *testing.T) {
	ctx := context.Background()
	pool := counterPool(t)
	require.NoError(t, storage.InTx(ctx, pool, func(outer pgx.Tx) error {
		require.NoError(t, bump(ctx, outer))
		calls := 0
		err := storage.InTx(ctx, outer, func(inner pgx.Tx) error {
			calls++
			require.NoError(t, bump(ctx, inner))
			return &pgconn.PgError{Code: "40001"}
		})
		require.Error(t, err)
		require.Equal(t, 1, calls)
		return nil
	}))
	require.Equal(t, 1, count(t, pool), "the savepoint's write is rolled back, the outer one kept")
}
