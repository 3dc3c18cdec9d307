package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// ErrNotPgx is returned by FromSQL for a *sql.DB whose driver is not pgx
// v5's stdlib driver: Ferry runs pgx on the driver's connections.
var ErrNotPgx = errors.New("storage: the *sql.DB does not use pgx v5's stdlib driver")

// FromSQL returns a Handle on a host's *sql.DB opened with pgx v5's stdlib
// driver: sql.Open("pgx", url), stdlib.OpenDB or stdlib.OpenDBFromPool.
// Another driver is refused with ErrNotPgx.
//
// Ferry borrows the *sql.DB's connections the way database/sql allows: it
// takes a *sql.Conn and uses the pgx connection under it only inside
// (*sql.Conn).Raw, until the statement's result is read, the rows are
// closed or the transaction ends. The host's pool settings
// (SetMaxOpenConns, SetConnMaxLifetime, ...) therefore cover Ferry's
// connections too, and a connection Ferry leaves broken is discarded by
// database/sql instead of reused. Ferry never closes db.
func FromSQL(db *sql.DB) (Handle, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: FromSQL: the *sql.DB is nil", ErrConfig)
	}
	if _, ok := db.Driver().(*stdlib.Driver); !ok {
		return nil, fmt.Errorf("%w: its driver is %T; open it with sql.Open(\"pgx\", url) or stdlib.OpenDB (github.com/jackc/pgx/v5/stdlib)",
			ErrNotPgx, db.Driver())
	}
	return sqlHandle{db: db}, nil
}

// sqlHandle is a Handle on a *sql.DB of pgx's stdlib driver.
type sqlHandle struct{ db *sql.DB }

// pgxConn is what pgx's stdlib driver connection offers.
type pgxConn interface{ Conn() *pgx.Conn }

func unwrapDriverConn(dc any) (*pgx.Conn, error) {
	c, ok := dc.(pgxConn)
	if !ok {
		return nil, fmt.Errorf("%w: its connections are %T", ErrNotPgx, dc)
	}
	return c.Conn(), nil
}

// reusable tells database/sql whether a connection may go back to its pool.
func reusable(c *pgx.Conn) bool {
	return !c.IsClosed() && !c.PgConn().IsBusy() && c.PgConn().TxStatus() == 'I'
}

// with runs fn on one connection of the pool, inside Raw.
func (h sqlHandle) with(ctx context.Context, fn func(c *pgx.Conn) error) error {
	sc, err := h.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	var fnErr error
	rawErr := sc.Raw(func(dc any) error {
		c, err := unwrapDriverConn(dc)
		if err != nil {
			return err
		}
		fnErr = fn(c)
		if !reusable(c) {
			return driver.ErrBadConn // database/sql discards the connection
		}
		return nil
	})
	switch {
	case fnErr != nil:
		return fnErr
	case rawErr != nil && !errors.Is(rawErr, driver.ErrBadConn):
		return rawErr
	}
	return nil
}

// acquire takes a connection and keeps it inside Raw's callback, on a
// goroutine of its own, until release; release waits for that goroutine
// to hand the connection back to database/sql and end.
func (h sqlHandle) acquire(ctx context.Context) (*pgx.Conn, func(), error) {
	sc, err := h.db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	handed := make(chan *pgx.Conn, 1)
	done := make(chan struct{})
	finished := make(chan error, 1)
	go func() {
		err := sc.Raw(func(dc any) error {
			c, err := unwrapDriverConn(dc)
			if err != nil {
				return err
			}
			handed <- c
			<-done
			if !reusable(c) {
				return driver.ErrBadConn
			}
			return nil
		})
		_ = sc.Close()
		finished <- err
	}()
	select {
	case c := <-handed:
		return c, onlyOnce(func() {
			close(done)
			<-finished
		}), nil
	case err := <-finished:
		return nil, nil, err
	}
}

func (h sqlHandle) label() string { return "" }

func (h sqlHandle) schema() string { return "" }

func (h sqlHandle) maxConns() int { return h.db.Stats().MaxOpenConnections }

func (h sqlHandle) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := h.with(ctx, func(c *pgx.Conn) error {
		var err error
		tag, err = c.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

func (h sqlHandle) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, release, err := h.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		release()
		return rows, err
	}
	return &heldRows{Rows: rows, release: release}, nil
}

func (h sqlHandle) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return sqlRow{h: h, ctx: ctx, sql: sql, args: args}
}

func (h sqlHandle) Begin(ctx context.Context) (pgx.Tx, error) {
	return h.BeginTx(ctx, pgx.TxOptions{})
}

func (h sqlHandle) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	c, release, err := h.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		release()
		return nil, err
	}
	return &heldTx{Tx: tx, release: release}, nil
}

// sqlRow runs its query when scanned, like pgx's rows do.
type sqlRow struct {
	h    sqlHandle
	ctx  context.Context
	sql  string
	args []any
}

func (r sqlRow) Scan(dest ...any) error {
	return r.h.with(r.ctx, func(c *pgx.Conn) error {
		return c.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	})
}

// heldRows returns its connection once the rows are read or closed.
type heldRows struct {
	pgx.Rows
	release func()
}

func (r *heldRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.release() // pgx closed the rows
	return false
}

func (r *heldRows) Close() {
	r.Rows.Close()
	r.release()
}

// heldTx returns its connection when the transaction ends. Savepoints
// (Begin on the Tx) are pgx's own and run on the same connection.
type heldTx struct {
	pgx.Tx
	release func()
}

func (t *heldTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.release()
	return err
}

func (t *heldTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.release()
	return err
}
