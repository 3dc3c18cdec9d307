package bbm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolSource is what the lock needs: a pool to take a dedicated connection
// from. *pgxpool.Pool has Acquire; *storage.DB has Primary.
type poolSource interface {
	Primary() *pgxpool.Pool
}

func (s *PostgresStore) pool() (*pgxpool.Pool, error) {
	switch db := s.db.(type) {
	case *pgxpool.Pool:
		return db, nil
	case poolSource:
		return db.Primary(), nil
	}
	return nil, fmt.Errorf("bbm: the worker lock needs a *pgxpool.Pool or *storage.DB, not %T", s.db)
}

// AcquireLock implements Store with a session-level advisory lock on a
// connection taken from the pool for as long as the lock is held. A
// blocking wait uses the server's lock_timeout, so a timed-out wait fails
// cleanly instead of racing a cancel request. Any error on that connection
// closes it, so a lock can never go back into the pool still held.
func (s *PostgresStore) AcquireLock(ctx context.Context, wait time.Duration) (Lock, error) {
	pool, err := s.pool()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("bbm: connection for the worker lock: %w", err)
	}
	l := &pgLock{conn: conn, key: s.lockKey}
	if err := l.take(ctx, wait); err != nil {
		l.discard()
		return nil, err
	}
	return l, nil
}

type pgLock struct {
	key  int64
	mu   sync.Mutex
	conn *pgxpool.Conn // nil once released
}

func (l *pgLock) take(ctx context.Context, wait time.Duration) error {
	c := l.conn.Conn()
	if wait <= 0 {
		var ok bool
		if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&ok); err != nil {
			return fmt.Errorf("bbm: taking the worker lock: %w", err)
		}
		if !ok {
			return ErrLockBusy
		}
		return nil
	}
	ms := max(wait.Milliseconds(), 1)
	if _, err := c.Exec(ctx, `SELECT set_config('lock_timeout', $1, false)`, fmt.Sprintf("%dms", ms)); err != nil {
		return fmt.Errorf("bbm: taking the worker lock: %w", err)
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, l.key); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return fmt.Errorf("%w (waited %s)", ErrLockBusy, wait)
		}
		return fmt.Errorf("bbm: taking the worker lock: %w", err)
	}
	if _, err := c.Exec(ctx, `RESET lock_timeout`); err != nil {
		return fmt.Errorf("bbm: taking the worker lock: %w", err)
	}
	return nil
}

// Check implements Lock: it pings the lock's connection, whose session
// holds the lock.
func (l *pgLock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return fmt.Errorf("%w: released", ErrLockLost)
	}
	if err := l.conn.Conn().Ping(ctx); err != nil {
		l.discardLocked()
		return fmt.Errorf("%w: %v", ErrLockLost, err)
	}
	return nil
}

// Release implements Lock.
func (l *pgLock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	var ok bool
	err := l.conn.Conn().QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&ok)
	if err != nil || !ok {
		// Closing the session releases whatever it held.
		l.discardLocked()
		if err != nil {
			return fmt.Errorf("bbm: releasing the worker lock: %w", err)
		}
		return nil
	}
	l.conn.Release()
	l.conn = nil
	return nil
}

func (l *pgLock) discard() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.discardLocked()
}

// discardLocked closes the lock's connection (dropping the lock with the
// session) and hands the closed connection back for the pool to destroy.
func (l *pgLock) discardLocked() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = l.conn.Conn().Close(ctx)
	cancel()
	l.conn.Release()
	l.conn = nil
}
