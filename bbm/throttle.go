package bbm

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/storage"
)

// Throttler is consulted before each job. While it says Hold the worker
// waits (keeping its lock, starting nothing) and asks again. An error counts
// as a hold: a worker that cannot tell whether the database is healthy
// does not add load to it.
type Throttler interface {
	Throttle(ctx context.Context) (Decision, error)
}

// Decision is a Throttler's answer.
type Decision struct {
	// Hold asks the worker to wait before the next job.
	Hold bool
	// Reason says why, for logs.
	Reason string
	// RetryAfter is how long to wait before asking again; 0 lets the
	// worker back off from its Interval.
	RetryAfter time.Duration
}

// ThrottlerFunc adapts a function to a Throttler.
type ThrottlerFunc func(ctx context.Context) (Decision, error)

// Throttle implements Throttler.
func (f ThrottlerFunc) Throttle(ctx context.Context) (Decision, error) { return f(ctx) }

// ReplicaLagOptions tunes NewReplicaLagThrottler.
type ReplicaLagOptions struct {
	// MaxLagBytes holds jobs while a replica has more than this much WAL
	// left to replay. Default 16 MiB.
	MaxLagBytes int64
	// MaxLag holds jobs while a replica's replay_lag is above it.
	// Default 10s.
	MaxLag time.Duration
	// MinReplicas holds jobs while fewer replicas are streaming (a
	// replica that dropped out cannot report its lag). Default 0.
	MinReplicas int
	// RetryAfter is how long to wait before asking again. Default 1s.
	RetryAfter time.Duration
}

// ReplicaLagThrottler holds jobs while the primary's streaming replicas
// lag, as read from pg_stat_replication on the primary (the role needs
// pg_monitor or superuser to see the positions).
type ReplicaLagThrottler struct {
	primary storage.Handle
	o       ReplicaLagOptions
}

var _ Throttler = (*ReplicaLagThrottler)(nil)

// NewReplicaLagThrottler returns a Throttler reading the primary.
func NewReplicaLagThrottler(primary storage.Handle, o ReplicaLagOptions) *ReplicaLagThrottler {
	if o.MaxLagBytes <= 0 {
		o.MaxLagBytes = 16 << 20
	}
	if o.MaxLag <= 0 {
		o.MaxLag = 10 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	return &ReplicaLagThrottler{primary: primary, o: o}
}

// Throttle implements Throttler.
func (t *ReplicaLagThrottler) Throttle(ctx context.Context) (Decision, error) {
	var streaming, unknown int
	var lagBytes int64
	var lagSecs float64
	err := t.primary.QueryRow(ctx, `SELECT count(*),
			count(*) FILTER (WHERE replay_lsn IS NULL),
			COALESCE(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint,
			COALESCE(max(EXTRACT(epoch FROM replay_lag)), 0)::float8
		FROM pg_stat_replication`).Scan(&streaming, &unknown, &lagBytes, &lagSecs)
	if err != nil {
		return Decision{}, fmt.Errorf("bbm: reading replica lag: %w", err)
	}
	lag := time.Duration(lagSecs * float64(time.Second))
	hold := func(format string, args ...any) (Decision, error) {
		return Decision{Hold: true, Reason: fmt.Sprintf(format, args...), RetryAfter: t.o.RetryAfter}, nil
	}
	switch {
	case streaming < t.o.MinReplicas:
		return hold("%d replicas streaming, want %d", streaming, t.o.MinReplicas)
	case unknown > 0:
		return hold("%d replicas have not reported a replay position", unknown)
	case lagBytes > t.o.MaxLagBytes:
		return hold("replica lag %d bytes > %d", lagBytes, t.o.MaxLagBytes)
	case lag > t.o.MaxLag:
		return hold("replica lag %s > %s", lag.Round(time.Millisecond), t.o.MaxLag)
	}
	return Decision{}, nil
}
