package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"
)

// ErrConfig reports a Config that cannot be used.
var ErrConfig = errors.New("storage: invalid config")

// Config describes where the primary and the replicas are and how reads are
// routed between them. Only PrimaryURL is required.
type Config struct {
	// PrimaryURL is a libpq URL or key=value string for the primary.
	PrimaryURL string
	// ReplicaURLs are streaming replicas of the primary; reads may go there.
	ReplicaURLs []string
	// MaxConns caps each pool's connections. Default: pgxpool's default
	// (the larger of 4 and the number of CPUs).
	MaxConns int32
	// MaxReplicaLagBytes: a replica more than this many bytes of WAL behind
	// the primary takes no reads. Default 16 MiB.
	MaxReplicaLagBytes int64
	// ReplicaCheckInterval is how long a replica's replay position is
	// trusted before it is read again. Default 1s.
	ReplicaCheckInterval time.Duration
	// ReplicaRetryAfter is how long a replica that failed takes no reads.
	// Default 10s.
	ReplicaRetryAfter time.Duration
	// StickyTTL is how long the WAL position of a write is remembered for
	// its sticky key. Older writes still count, through a shared floor
	// position, so forgetting a key never weakens read-your-writes.
	// Default 1 minute.
	StickyTTL time.Duration
	// MaxStickyKeys bounds the memory used for sticky keys. Default 100,000.
	MaxStickyKeys int
	// Logger receives routing and health events. Default: slog.Default().
	Logger *slog.Logger
	// Observer is told where each routed read went and how far behind
	// each replica is, for metrics and tracing (see prommetrics).
	// Default: none (an empty ObserverFuncs).
	Observer Observer
}

func (c *Config) applyDefaults() {
	if c.MaxReplicaLagBytes <= 0 {
		c.MaxReplicaLagBytes = 16 << 20
	}
	if c.ReplicaCheckInterval <= 0 {
		c.ReplicaCheckInterval = time.Second
	}
	if c.ReplicaRetryAfter <= 0 {
		c.ReplicaRetryAfter = 10 * time.Second
	}
	if c.StickyTTL <= 0 {
		c.StickyTTL = time.Minute
	}
	if c.MaxStickyKeys <= 0 {
		c.MaxStickyKeys = 100_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = ObserverFuncs{}
	}
}

// DB is a primary pool with optional replica pools. As a Querier and
// Beginner it always uses the primary; Read chooses where a read goes.
type DB struct {
	cfg      Config
	primary  *pgxpool.Pool
	replicas []*replica
	sticky   *stickyLSNs

	refreshes singleflight.Group

	mu   sync.Mutex
	next int // round-robin start among replicas
}

// Open connects to the primary and the replicas and checks that the primary
// answers. A replica that does not answer is logged and kept out of
// rotation until it does; a malformed URL or an unreachable primary is an
// error naming the host.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg.applyDefaults()
	if cfg.PrimaryURL == "" {
		return nil, fmt.Errorf("%w: PrimaryURL is empty", ErrConfig)
	}
	primary, err := openPool(ctx, "primary", cfg.PrimaryURL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	db := &DB{cfg: cfg, primary: primary, sticky: newStickyLSNs(cfg.StickyTTL, cfg.MaxStickyKeys)}
	if err := primary.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: primary %s does not answer: %w", describe(primary.Config().ConnConfig), err)
	}
	for i, u := range cfg.ReplicaURLs {
		pool, err := openPool(ctx, fmt.Sprintf("replica %d", i), u, cfg.MaxConns)
		if err != nil {
			db.Close()
			return nil, err
		}
		r := &replica{name: describe(pool.Config().ConnConfig), pool: pool}
		db.replicas = append(db.replicas, r)
		if err := pool.Ping(ctx); err != nil {
			r.markDown(time.Now().Add(cfg.ReplicaRetryAfter))
			cfg.Logger.WarnContext(ctx, "replica does not answer; reads go elsewhere", "replica", r.name, "error", err)
			cfg.Observer.ReplicaChecked(ctx, ReplicaEvent{Replica: r.name, Err: err})
		}
	}
	return db, nil
}

func openPool(ctx context.Context, role, url string, maxConns int32) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors may echo the URL; keep passwords out of logs.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s URL: %s", ErrConfig, role, pe.Unwrap())
		}
		return nil, fmt.Errorf("%w: %s URL: %v", ErrConfig, role, err)
	}
	if maxConns > 0 {
		pcfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("storage: %s %s: %w", role, describe(pcfg.ConnConfig), err)
	}
	return pool, nil
}

// describe names a server without its password: host:port/database.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Close closes every pool. It waits for connections in use to be returned.
func (db *DB) Close() {
	if db.primary != nil {
		db.primary.Close()
	}
	for _, r := range db.replicas {
		r.pool.Close()
	}
}

// Primary returns the primary's pool.
func (db *DB) Primary() *pgxpool.Pool { return db.primary }

// Exec runs sql on the primary.
func (db *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return db.primary.Exec(ctx, sql, args...)
}

// Query runs sql on the primary.
func (db *DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return db.primary.Query(ctx, sql, args...)
}

// QueryRow runs sql on the primary.
func (db *DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return db.primary.QueryRow(ctx, sql, args...)
}

// Begin starts a transaction on the primary.
func (db *DB) Begin(ctx context.Context) (pgx.Tx, error) { return db.primary.Begin(ctx) }

// BeginTx starts a transaction on the primary with options.
func (db *DB) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return db.primary.BeginTx(ctx, opts)
}
