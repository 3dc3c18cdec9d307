package bbm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/storage"
)

// HealthOptions tunes the default Throttler, which holds jobs while the
// database is unhealthy (see NewHealthThrottler). The zero value gives the
// documented defaults.
type HealthOptions struct {
	// Off turns the default health checks off (a Throttler set in
	// Options replaces them anyway).
	Off bool
	// MaxReplicaLag holds jobs while a streaming replica's replay lag is
	// above it. Default 5s.
	MaxReplicaLag time.Duration
	// MaxReplicaLagBytes holds jobs while a replica has more than this
	// much WAL left to replay. Default 64 MiB.
	MaxReplicaLagBytes int64
	// MaxWALRate holds jobs while the primary writes WAL faster than this
	// many bytes per second (between two samples), for hosts whose
	// archiving or network cannot keep up. Default 0: no limit.
	MaxWALRate int64
	// LockWait and MaxLockWaiters hold jobs while more than MaxLockWaiters
	// sessions of the database have waited on a lock for longer than
	// LockWait: the migration's row locks may be what they wait for.
	// Defaults 2s and 0.
	LockWait       time.Duration
	MaxLockWaiters int
	// SampleInterval is how often the database is sampled; decisions in
	// between reuse the last sample. Default 1s.
	SampleInterval time.Duration
	// RetryAfter is how long a hold lasts before the worker asks again.
	// Default 1s.
	RetryAfter time.Duration
}

func (o HealthOptions) withDefaults() HealthOptions {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&o.MaxReplicaLag, 5*time.Second)
	setDur(&o.LockWait, 2*time.Second)
	setDur(&o.SampleInterval, time.Second)
	setDur(&o.RetryAfter, time.Second)
	if o.MaxReplicaLagBytes <= 0 {
		o.MaxReplicaLagBytes = 64 << 20
	}
	o.MaxWALRate = max(o.MaxWALRate, 0)
	o.MaxLockWaiters = max(o.MaxLockWaiters, 0)
	return o
}

// HealthThrottler is the default Throttler of workers with a database: it
// holds jobs while physical streaming replicas lag (pg_stat_replication;
// pg_receivewal and logical walsenders do not count), while the
// primary writes WAL faster than MaxWALRate, or while sessions wait on
// locks for long. Together with the job-duration pacing of the workers it
// lets a backfill run as fast as the database is healthy, and back off
// within about SampleInterval of a signal crossing its bound.
//
// Replica positions and other sessions' waits are visible to superusers
// and members of pg_monitor only; for other roles those checks are skipped
// (with a warning, once) rather than holding forever.
type HealthThrottler struct {
	db  storage.Handle
	o   HealthOptions
	log *slog.Logger

	mu       sync.Mutex
	sampled  time.Time
	decision Decision
	lastWAL  int64 // WAL position at the last sample
	lastAt   time.Time
	monitor  *bool // whether the role can see replica positions and waits
}

var _ Throttler = (*HealthThrottler)(nil)

// NewHealthThrottler returns a Throttler reading the primary db. logger
// may be nil.
func NewHealthThrottler(db storage.Handle, o HealthOptions, logger *slog.Logger) *HealthThrottler {
	if logger == nil {
		logger = slog.Default()
	}
	return &HealthThrottler{db: db, o: o.withDefaults(), log: logger}
}

// Throttle implements Throttler.
func (h *HealthThrottler) Throttle(ctx context.Context) (Decision, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.sampled.IsZero() && time.Since(h.sampled) < h.o.SampleInterval {
		return h.decision, nil
	}
	d, err := h.sample(ctx)
	if err != nil {
		return Decision{}, err
	}
	h.sampled, h.decision = time.Now(), d
	return d, nil
}

// health is one sample of the database.
type health struct {
	wal         int64
	replicas    int
	lagBytes    int64
	lag         time.Duration
	lockWaiters int
}

func (h *HealthThrottler) sample(ctx context.Context) (Decision, error) {
	if h.monitor == nil {
		var ok bool
		if err := h.db.QueryRow(ctx, `SELECT COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false)
				OR pg_has_role(current_user, 'pg_monitor', 'MEMBER')`).Scan(&ok); err != nil {
			return Decision{}, fmt.Errorf("bbm: health: reading the role's privileges: %w", err)
		}
		h.monitor = &ok
		if !ok {
			h.log.WarnContext(ctx, "bbm health checks cannot see replica lag or lock waits: grant pg_monitor to the role to enable them")
		}
	}
	var s health
	var lagSecs float64
	// Replicas are physical standbys that replay WAL: pg_receivewal (a
	// WAL archiver such as barman's) never replays, and a logical
	// walsender's consumer is not a replica whose reads go stale.
	err := h.db.QueryRow(ctx, `WITH replicas AS (
			SELECT r.replay_lsn, r.replay_lag FROM pg_stat_replication r
			WHERE r.state = 'streaming' AND r.replay_lsn IS NOT NULL
			  AND NOT EXISTS (SELECT 1 FROM pg_replication_slots s WHERE s.active_pid = r.pid AND s.slot_type = 'logical'))
		SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
			(SELECT count(*) FROM replicas),
			(SELECT COALESCE(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint FROM replicas),
			(SELECT COALESCE(max(EXTRACT(epoch FROM replay_lag)), 0)::float8 FROM replicas),
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
				AND state = 'active' AND clock_timestamp() - query_start > $1::bigint * interval '1 millisecond')`,
		h.o.LockWait.Milliseconds()).Scan(&s.wal, &s.replicas, &s.lagBytes, &lagSecs, &s.lockWaiters)
	if err != nil {
		return Decision{}, fmt.Errorf("bbm: health: sampling the database: %w", err)
	}
	s.lag = time.Duration(lagSecs * float64(time.Second))
	now := time.Now()
	var walRate float64
	if !h.lastAt.IsZero() {
		walRate = float64(s.wal-h.lastWAL) / now.Sub(h.lastAt).Seconds()
	}
	h.lastWAL, h.lastAt = s.wal, now

	var reasons []string
	if *h.monitor {
		switch {
		case s.lag > h.o.MaxReplicaLag:
			reasons = append(reasons, fmt.Sprintf("replica lag %s > %s", s.lag.Round(time.Millisecond), h.o.MaxReplicaLag))
		case s.lagBytes > h.o.MaxReplicaLagBytes:
			reasons = append(reasons, fmt.Sprintf("replica lag %d bytes > %d", s.lagBytes, h.o.MaxReplicaLagBytes))
		}
		if s.lockWaiters > h.o.MaxLockWaiters {
			reasons = append(reasons, fmt.Sprintf("%d sessions waiting on locks for over %s", s.lockWaiters, h.o.LockWait))
		}
	}
	if h.o.MaxWALRate > 0 && walRate > float64(h.o.MaxWALRate) {
		reasons = append(reasons, fmt.Sprintf("WAL rate %.0f bytes/s > %d", walRate, h.o.MaxWALRate))
	}
	if len(reasons) == 0 {
		return Decision{}, nil
	}
	return Decision{Hold: true, Reason: strings.Join(reasons, "; "), RetryAfter: h.o.RetryAfter}, nil
}
