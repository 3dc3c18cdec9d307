package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

type usePrimaryKey struct{}

// UsePrimary returns a context under which DB.Read always picks the primary,
// for code that must never see a lagging replica (e.g. a handler that
// checks a state another process has just changed).
func UsePrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, usePrimaryKey{}, true)
}

// UsesPrimary reports whether ctx was made by UsePrimary.
func UsesPrimary(ctx context.Context) bool {
	v, _ := ctx.Value(usePrimaryKey{}).(bool)
	return v
}

// Target says where a routed read went.
type Target int

const (
	// TargetPrimary is the primary.
	TargetPrimary Target = iota
	// TargetReplica is one of the replicas.
	TargetReplica
)

// String returns "primary" or "replica".
func (t Target) String() string {
	if t == TargetReplica {
		return "replica"
	}
	return "primary"
}

// Read returns where a read for the sticky key should go: a replica that
// has replayed every write recorded for key (and every write whose key was
// forgotten), is healthy and not too far behind; otherwise the primary. An
// empty key has no writes of its own. The replica's Querier falls back to
// the primary when the replica fails on a connection level.
func (db *DB) Read(ctx context.Context, key string) Querier {
	q, _ := db.Choose(ctx, key)
	return q
}

// Choose is Read that also says which kind of server it picked.
func (db *DB) Choose(ctx context.Context, key string) (Querier, Target) {
	switch {
	case len(db.replicas) == 0:
		db.cfg.Observer.ReadRouted(ctx, RouteEvent{Target: TargetPrimary, Reason: RouteNoReplicas, Key: key})
		return db.primary, TargetPrimary
	case UsesPrimary(ctx):
		db.cfg.Observer.ReadRouted(ctx, RouteEvent{Target: TargetPrimary, Reason: RouteUsePrimary, Key: key})
		return db.primary, TargetPrimary
	}
	now := time.Now()
	need := db.sticky.need(key, now)
	db.mu.Lock()
	start := db.next
	db.next = (db.next + 1) % len(db.replicas)
	db.mu.Unlock()
	reason := RouteReplicasDown
	for i := range db.replicas {
		r := db.replicas[(start+i)%len(db.replicas)]
		ok, up := db.replicaCanServe(ctx, r, need, now)
		if ok {
			db.cfg.Observer.ReadRouted(ctx, RouteEvent{Target: TargetReplica, Reason: RouteCaughtUp, Replica: r.name, Key: key})
			return &replicaQuerier{db: db, r: r}, TargetReplica
		}
		if up {
			reason = RouteReplicasBehind
		}
	}
	db.cfg.Observer.ReadRouted(ctx, RouteEvent{Target: TargetPrimary, Reason: reason, Key: key})
	return db.primary, TargetPrimary
}

// replicaCanServe reads the replica's replay position again when the cached
// one is stale, or behind need and not just read. up reports whether the
// replica is healthy (it may still be too far behind).
func (db *DB) replicaCanServe(ctx context.Context, r *replica, need uint64, now time.Time) (ok, up bool) {
	st := r.snapshot()
	if now.Before(st.downUntil) {
		return false, false
	}
	stale := now.Sub(st.checkedAt) > db.cfg.ReplicaCheckInterval
	behind := st.replayLSN < need
	if stale || (behind && now.Sub(st.checkedAt) > replicaRecheck) {
		if err := db.refreshReplica(ctx, r); err != nil {
			return false, false
		}
		st = r.snapshot()
	}
	return st.replayLSN >= need && st.lagBytes <= db.cfg.MaxReplicaLagBytes, true
}

// replicaRecheck bounds how often a replica known to be behind a sticky key
// is asked again, so a burst of reads after one write costs few round trips.
const replicaRecheck = 5 * time.Millisecond

// refreshReplica reads the replica's replay position and the primary's
// insert position (for the lag), marking the replica down on failure.
// Concurrent refreshes of one replica share one round trip.
func (db *DB) refreshReplica(ctx context.Context, r *replica) error {
	_, err, _ := db.refreshes.Do(r.name, func() (any, error) {
		return nil, db.readReplicaPosition(ctx, r)
	})
	return err
}

func (db *DB) readReplicaPosition(ctx context.Context, r *replica) (err error) {
	var lag int64
	ctx = db.cfg.Observer.ReplicaCheckStart(ctx, ReplicaCheckStartEvent{Replica: r.name})
	began := time.Now() // the check's own time, not the observer's
	defer func() {
		db.cfg.Observer.ReplicaCheckEnd(ctx, ReplicaEvent{Replica: r.name, LagBytes: lag, Duration: time.Since(began), Err: err,
			Abandoned: err != nil && ctx.Err() != nil}) // the caller giving up says nothing about the replica
	}()
	var inRecovery bool
	var replay int64
	err = r.h.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0)`).Scan(&inRecovery, &replay)
	if err == nil && !inRecovery {
		err = fmt.Errorf("storage: %s is not in recovery (promoted?)", r.name)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.markDown(time.Now().Add(db.cfg.ReplicaRetryAfter))
			db.cfg.Logger.WarnContext(ctx, "replica check failed; reads go elsewhere",
				"replica", r.name, "retry_after", db.cfg.ReplicaRetryAfter, "error", err)
		}
		return err
	}
	primaryLSN, err := db.currentLSN(ctx)
	if err != nil {
		return err
	}
	lag = max(int64(primaryLSN)-replay, 0)
	r.record(uint64(replay), lag, time.Now())
	return nil
}

func (db *DB) currentLSN(ctx context.Context) (uint64, error) {
	var lsn int64
	if err := db.primary.QueryRow(ctx,
		`SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("storage: reading the primary's WAL position: %w", err)
	}
	return db.recordEnd(ctx, uint64(lsn)), nil
}

// RecordWrite remembers the primary's current WAL position (the end of its
// last record) for key, so that later reads for key go to a replica only
// once it has replayed that far. Call it after the write has committed. Without replicas it does
// nothing.
func (db *DB) RecordWrite(ctx context.Context, key string) error {
	if len(db.replicas) == 0 {
		return nil
	}
	lsn, err := db.currentLSN(ctx)
	if err != nil {
		return err
	}
	db.sticky.put(key, lsn, time.Now())
	return nil
}

// WriteTx runs fn in a transaction on the primary (see InTx) and, once it
// has committed, records the write for key. An error means the transaction
// did not commit: when the WAL position cannot be read after the commit,
// WriteTx still returns nil (a caller must never retry a committed write),
// logs a warning and sends key's reads to the primary for StickyTTL.
func (db *DB) WriteTx(ctx context.Context, key string, fn func(tx pgx.Tx) error) error {
	if err := InTx(ctx, db.primary, fn); err != nil {
		return err
	}
	if err := db.RecordWrite(ctx, key); err != nil {
		db.sticky.pin(key, time.Now())
		db.cfg.Logger.WarnContext(ctx, "storage: the write committed but its WAL position could not be read; its key's reads go to the primary",
			"key", key, "sticky_ttl", db.cfg.StickyTTL, "error", err)
	}
	return nil
}

// replica is one replica pool and what is known of its position.
type replica struct {
	name string
	h    Handle

	mu sync.Mutex
	st replicaState
}

type replicaState struct {
	replayLSN uint64
	lagBytes  int64
	checkedAt time.Time
	downUntil time.Time
}

func (r *replica) snapshot() replicaState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *replica) record(replay uint64, lag int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st = replicaState{replayLSN: replay, lagBytes: lag, checkedAt: at}
}

func (r *replica) markDown(until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.downUntil = until
	r.st.checkedAt = time.Time{}
}

// replicaQuerier runs on a replica and falls back to the primary when the
// replica fails on a connection level.
type replicaQuerier struct {
	db *DB
	r  *replica
}

func (q *replicaQuerier) fallback(ctx context.Context, err error) bool {
	if ctx.Err() != nil || !isConnectionFailure(err) {
		return false
	}
	q.r.markDown(time.Now().Add(q.db.cfg.ReplicaRetryAfter))
	q.db.cfg.Logger.WarnContext(ctx, "replica failed; retrying on the primary", "replica", q.r.name, "error", err)
	q.db.cfg.Observer.ReplicaFellBack(ctx, FallbackEvent{Replica: q.r.name, Err: err})
	return true
}

func (q *replicaQuerier) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := q.r.h.Exec(ctx, sql, args...)
	if err != nil && q.fallback(ctx, err) {
		return q.db.primary.Exec(ctx, sql, args...)
	}
	return tag, err
}

func (q *replicaQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := q.r.h.Query(ctx, sql, args...)
	if err != nil && q.fallback(ctx, err) {
		return q.db.primary.Query(ctx, sql, args...)
	}
	return rows, err
}

func (q *replicaQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &fallbackRow{q: q, ctx: ctx, sql: sql, args: args}
}

// fallbackRow defers the query to Scan, where pgx reports its errors.
type fallbackRow struct {
	q    *replicaQuerier
	ctx  context.Context
	sql  string
	args []any
}

func (r *fallbackRow) Scan(dest ...any) error {
	err := r.q.r.h.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	if err != nil && r.q.fallback(r.ctx, err) {
		return r.q.db.primary.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	}
	return err
}

// isConnectionFailure tells errors of the server or the network (worth
// another server) from errors of the query itself.
func isConnectionFailure(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P: operator intervention (shutdown,
		// cannot connect now); 40001 on a standby is a recovery conflict.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}
