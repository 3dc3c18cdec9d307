// Package storage is Ferry's Postgres plumbing on pgx/v5.
//
// Handle is the goroutine-safe database handle every Postgres-backed piece
// of Ferry takes. A host passes its own: FromPool for a *pgxpool.Pool,
// FromSQL for a *sql.DB opened with pgx's stdlib driver (Ferry borrows its
// connections inside (*sql.Conn).Raw, so the host's pool limits hold), or a
// *DB. Only this package makes Handles, so a single connection or a
// transaction does not compile where one is wanted.
//
// Querier is the subset of pgx that pools, connections and transactions
// share, so Ferry code and host Work run inside or outside a transaction
// alike. InTx runs a function in a transaction that commits on nil, rolls
// back on error or panic, and retries serialization failures and deadlocks.
//
// Migrate applies Ferry's embedded schema (numbered SQL files, one per
// package, each with a down file) in order, each in its own transaction,
// under a transaction-scoped advisory lock so that several processes may
// start at once; it records what it applied in ferry_schema_migrations and
// refuses a schema newer than the binary. A host's own migration files run
// through MigrateWith get a version table of their own (MigrateOptions.Table),
// never Ferry's. A host that runs every migration with its own tool takes
// Ferry's as a list (Migrations, with up and down SQL) or as files in
// golang-migrate's layout (MigrationsFS) instead.
//
// WithSchema (or Config.Schema) puts Ferry's tables in a PostgreSQL schema of
// their own: Migrate creates them there, and every package qualifies its
// table names with the Handle's schema (Table), so no session state is set.
//
// DB is a primary with optional streaming replicas, opened from URLs (Open)
// or over a host's own handles (Wrap). Writes go to the primary. DB.Read routes a read for a sticky key (say a repository path)
// to a replica only once that replica has replayed the primary's WAL up to
// the position recorded at the key's last write (RecordWrite or WriteTx);
// otherwise, or when replicas are unhealthy or too far behind, the read
// goes to the primary. UsePrimary forces the primary for a context.
//
// Config.Observer is told where each routed read went and why (RouteReason),
// each replica's lag as measured, and reads that fell back to the primary,
// for metrics and tracing without a metrics dependency here (package
// prommetrics implements it with Prometheus). Hooks have pgx's tracer
// shape, like every Ferry package's: a replica check gets
// ReplicaCheckStart, whose returned context its queries run under, and
// ReplicaCheckEnd with that context; routed reads and fallbacks are single
// calls.
package storage
