package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// Schema is the PostgreSQL schema of Ferry's tables (see WithSchema).
	// Default: the primary handle's (Wrap), else the first schema of the
	// search_path.
	Schema string
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

// DB is a primary with optional replicas, each a Handle. As a Handle it
// always uses the primary; Read chooses where a read goes. Open makes one
// from URLs, Wrap from the host's own handles.
type DB struct {
	cfg      Config
	primary  Handle
	replicas []*replica
	sticky   *stickyLSNs
	owned    []*pgxpool.Pool // pools Open made, closed by Close

	refreshes singleflight.Group
	// walGeometry is the primary's, once known (see recordEnd).
	walGeometry atomic.Pointer[walGeometry]

	mu   sync.Mutex
	next int // round-robin start among replicas
}

var _ Handle = (*DB)(nil)

// Open connects to the primary and the replicas and checks that the primary
// answers. A replica that does not answer is logged and kept out of
// rotation until it does; a malformed URL or an unreachable primary is an
// error naming the host.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg.applyDefaults()
	if cfg.PrimaryURL == "" {
		return nil, fmt.Errorf("%w: PrimaryURL is empty", ErrConfig)
	}
	if err := cfg.checkSchema(); err != nil {
		return nil, err
	}
	primary, err := openPool(ctx, "primary", cfg.PrimaryURL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	db := newDB(cfg, FromPool(primary))
	db.owned = append(db.owned, primary)
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
		db.owned = append(db.owned, pool)
		r := db.addReplica(i, FromPool(pool))
		if err := pool.Ping(ctx); err != nil {
			r.markDown(time.Now().Add(cfg.ReplicaRetryAfter))
			cfg.Logger.WarnContext(ctx, "replica does not answer; reads go elsewhere", "replica", r.name, "error", err)
			// Reported as a check that failed at once: only a failure says
			// something here (a ping reads no position).
			cctx := cfg.Observer.ReplicaCheckStart(ctx, ReplicaCheckStartEvent{Replica: r.name})
			cfg.Observer.ReplicaCheckEnd(cctx, ReplicaEvent{Replica: r.name, Err: err})
		}
	}
	return db, nil
}

// Wrap returns a DB on a host's own handles (FromPool, FromSQL): writes and
// transactions go to primary, and reads given a sticky key (Read, Choose)
// go to a replica that has replayed the key's last write, exactly as with
// Open. Close leaves the handles open: they are the host's.
func Wrap(primary Handle, replicas ...Handle) (*DB, error) {
	return WrapWith(Config{}, primary, replicas...)
}

// WrapWith is Wrap with routing settings. cfg's connection fields
// (PrimaryURL, ReplicaURLs, MaxConns) belong to Open and must be empty.
// A replica whose handle cannot name its server (FromSQL) is named
// "replica N" in logs and metrics, N its position in replicas.
func WrapWith(cfg Config, primary Handle, replicas ...Handle) (*DB, error) {
	switch {
	case cfg.PrimaryURL != "" || len(cfg.ReplicaURLs) > 0 || cfg.MaxConns != 0:
		return nil, fmt.Errorf("%w: WrapWith takes handles; PrimaryURL, ReplicaURLs and MaxConns are for Open", ErrConfig)
	case primary == nil:
		return nil, fmt.Errorf("%w: Wrap: the primary handle is nil", ErrConfig)
	}
	if err := cfg.checkSchema(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	db := newDB(cfg, primary)
	for i, h := range replicas {
		if h == nil {
			return nil, fmt.Errorf("%w: Wrap: replica %d is nil", ErrConfig, i)
		}
		db.addReplica(i, h)
	}
	return db, nil
}

func (c Config) checkSchema() error {
	if c.Schema == "" {
		return nil
	}
	return checkIdentifier("Config.Schema", c.Schema)
}

func newDB(cfg Config, primary Handle) *DB {
	return &DB{cfg: cfg, primary: primary, sticky: newStickyLSNs(cfg.StickyTTL, cfg.MaxStickyKeys)}
}

func (db *DB) addReplica(i int, h Handle) *replica {
	name := h.label()
	if name == "" {
		name = fmt.Sprintf("replica %d", i)
	}
	r := &replica{name: name, h: h}
	db.replicas = append(db.replicas, r)
	return r
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

// Close closes the pools Open made, waiting for connections in use to be
// returned. Handles given to Wrap are left open.
func (db *DB) Close() {
	for _, p := range db.owned {
		p.Close()
	}
}

// Primary returns the primary's handle.
func (db *DB) Primary() Handle { return db.primary }

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

func (db *DB) acquire(ctx context.Context) (*pgx.Conn, func(), error) { return db.primary.acquire(ctx) }

func (db *DB) label() string { return db.primary.label() }

func (db *DB) maxConns() int { return db.primary.maxConns() }

func (db *DB) schema() string {
	if db.cfg.Schema != "" {
		return db.cfg.Schema
	}
	return db.primary.schema()
}
