package storage

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Handle is a goroutine-safe handle on one PostgreSQL database, backed by a
// pool of connections: what every Postgres-backed piece of Ferry takes
// (bbm's workers and stores, pglease, the enqueuer's store, Migrate). A
// host passes its own pool: FromPool for a *pgxpool.Pool, FromSQL for a
// *sql.DB opened with pgx's stdlib driver; a *DB (Open, Wrap) is a Handle
// on its primary that can also route reads to replicas.
//
// As a Querier a Handle runs each statement on some connection of its pool;
// a transaction (Begin, BeginTx) keeps one connection until Commit or
// Rollback. Nothing Ferry runs on a Handle relies on session state between
// transactions, so a Handle may point at PgBouncer in transaction pooling
// mode.
//
// Only this package makes Handles (the interface has unexported methods),
// so a single connection or a transaction, which are not safe for
// concurrent use, fail to compile where a Handle is wanted.
type Handle interface {
	Querier
	// Begin starts a transaction on a connection held until it ends.
	Begin(ctx context.Context) (pgx.Tx, error)
	// BeginTx is Begin with options (isolation level, read only).
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)

	// acquire hands out one connection of the pool for the caller's
	// exclusive use until release is called (see AcquireConn).
	acquire(ctx context.Context) (conn *pgx.Conn, release func(), err error)
	// label names the database for logs and metrics (host:port/database,
	// never a password), or "" when it cannot be known without connecting.
	label() string
	// schema is the schema of Ferry's tables, "" for the search_path's.
	schema() string
	// maxConns is the most connections the handle opens at once, 0 when
	// unbounded or unknown.
	maxConns() int
}

// MaxConns returns the most connections h opens at once (a pgx pool's
// MaxConns, a *sql.DB's SetMaxOpenConns, a *DB's primary's), or 0 when
// that is unbounded or unknown. Packages that hold a connection per unit
// of work (bbm's running jobs) check it against their own parallelism.
func MaxConns(h Handle) int {
	if h == nil {
		return 0
	}
	return h.maxConns()
}

// FromPool returns a Handle on a host's pgx pool. Ferry never closes it.
// FromPool(nil) is nil, which constructors treat as "no database" where
// they accept one (e.g. bbm.NewSyncWorker with in-memory stores).
func FromPool(pool *pgxpool.Pool) Handle {
	if pool == nil {
		return nil
	}
	return poolHandle{pool: pool}
}

// AcquireConn hands out one connection of h for the caller's exclusive use,
// for the rare work that needs several statements on one session outside a
// transaction. release returns it to h's pool; a connection the caller
// closed (or left in a transaction or a broken state) is discarded instead
// of reused. release may be called more than once.
//
// Behind PgBouncer in transaction pooling mode, session state (SET,
// advisory locks, prepared statements) does not survive from one
// transaction to the next even on such a connection: prefer a transaction.
func AcquireConn(ctx context.Context, h Handle) (conn *pgx.Conn, release func(), err error) {
	if h == nil {
		return nil, nil, fmt.Errorf("%w: AcquireConn on a nil Handle", ErrConfig)
	}
	return h.acquire(ctx)
}

// poolHandle is a Handle on a *pgxpool.Pool.
type poolHandle struct{ pool *pgxpool.Pool }

func (h poolHandle) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return h.pool.Exec(ctx, sql, args...)
}

func (h poolHandle) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return h.pool.Query(ctx, sql, args...)
}

func (h poolHandle) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return h.pool.QueryRow(ctx, sql, args...)
}

func (h poolHandle) Begin(ctx context.Context) (pgx.Tx, error) { return h.pool.Begin(ctx) }

func (h poolHandle) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return h.pool.BeginTx(ctx, opts)
}

func (h poolHandle) acquire(ctx context.Context) (*pgx.Conn, func(), error) {
	c, err := h.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	// pgxpool destroys a released connection that is closed, busy or in
	// a transaction instead of reusing it.
	return c.Conn(), onlyOnce(c.Release), nil
}

func (h poolHandle) label() string { return describe(h.pool.Config().ConnConfig) }

func (h poolHandle) schema() string { return "" }

func (h poolHandle) maxConns() int { return int(h.pool.Config().MaxConns) }

// onlyOnce makes a release function safe to call more than once, from any
// goroutine.
func onlyOnce(f func()) func() {
	var once sync.Once
	return func() { once.Do(f) }
}
