package storage

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is the part of pgx that *pgxpool.Pool, pgx.Tx and *pgx.Conn all
// share. Ferry code and host Work take a Querier so that they run the same
// way inside or outside a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner is a Querier that can start a transaction: *pgxpool.Pool,
// *pgx.Conn, *DB, and pgx.Tx (where Begin opens a savepoint).
type Beginner interface {
	Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// txOptionsBeginner is implemented by pools and connections (not by pgx.Tx)
// and lets InTx choose an isolation level.
type txOptionsBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}
