// Package bbm runs batched background migrations: it backfills or rewrites
// the rows of a large Postgres table online, one short transaction per
// batch of rows, so that a table of billions of rows changes without long
// locks, long transactions or downtime.
//
// # Model
//
// A Migration names a target table (schema-qualified), its key columns, a
// key range [Lower, Upper], a batch size, a batching Strategy, a
// FailurePolicy, optional JSON arguments and the Work that processes a
// batch. Its Status moves paused → active → running → finished, or to
// failed with an ErrorCode. Workers cut the range into Jobs as they go: a
// Job is a key range with a status (running, finished, failed), an attempt
// count and a lease. Both live in Ferry's schema (storage/migrations)
// behind the Store interface; PostgresStore is the real Store,
// bbmtest.Store an in-memory fake, and bbmtest.TestStore the conformance
// suite both pass.
//
// # Work
//
// A host implements Work (or wraps a function with WorkFunc) and registers
// it on a worker with Register; nothing is registered globally. Work.Do gets
// a Batch (table, key columns, Start and End, the migration's Args) and the
// job's transaction; Batch.Where gives the SQL condition selecting the
// batch's rows.
//
// A range applies exactly once by default: the job is recorded finished
// inside the Work's transaction, so a worker killed at any point either
// committed both or neither, and even a non-idempotent Work (SET n = n + 1)
// is safe. This holds when the bbm tables and the migrated table share a
// database, the normal case. Work that writes elsewhere (another database,
// object storage, an API) declares DeliveryAtLeastOnce with WithDelivery:
// it runs outside a transaction of bbm's, the job is recorded after it
// returns, and a range may run again after a crash, so it must be
// idempotent. Migration.Delivery records the mode at registration, and each
// "job started" log line carries it.
//
// # Batching
//
// Both strategies walk the key in index order, as GitLab's each_batch does:
// a job starts at the first key after the previous job and ends at the
// BatchSize-th key from there, so every job has BatchSize rows (fewer at
// the end) however sparse the keys: ids {1, 2, 100000000} are one job. The
// key is one column of any type with a btree ordering (integer, uuid,
// text in its collation, timestamp, ...) or several (a composite key such as
// (repository_id, name), compared row-wise). Keys travel as Key, one string
// per column in PostgreSQL's text form, and are only compared by the
// database, cast back to the key's types.
//
// Keyset (the default) covers every row in the range. Key columns must be
// NOT NULL: a row whose key is NULL would be in no batch and the migration
// would still finish, so registration refuses a nullable key column
// (ErrNullableKey). NullKeys covers the rows WHERE column IS NULL, keyed by
// the columns of a partial index WHERE column IS NULL; without such an
// index it refuses to start (ErrMissingNullIndex), since every batch would
// scan the table. Rows inserted after registration with keys above Upper
// are not processed: the application writes new rows in their final form.
//
// Batch sizes adapt by default: the size of new jobs tracks
// AdaptiveOptions.TargetJobDuration (500ms) from the measured rate of the
// last jobs (smoothed, bounded growth per job, within BatchSize/10 and
// BatchSize*10).
//
// # Failures
//
// A failed attempt is retried after RetryBackoff (doubling), up to
// MaxJobAttempts. With FinishOthers (the default, as GitLab does) a range
// that keeps failing does not stall the migration: every other range runs
// first, failed jobs are retried after the last range was cut, and when
// nothing else is left the migration fails listing the failed ranges; it
// also stops early when at least FailedRatioMinJobs jobs exist and more
// than half failed. FailFast retries a failed job before new ranges and
// fails the migration when one job used its last attempt. Errors retrying
// cannot fix (a dropped table or column) fail the migration at once.
// RetryFailed resets a failed migration's jobs for another round.
//
// # Workers and parallelism
//
// NewSyncWorker gives a worker for deploy steps and tools: Run (or
// RunMigrations for named ones) runs until nothing is left, riding out a
// database it cannot reach for up to MaxOutage. NewWorker gives a
// background worker for a server process; Stop lets the running jobs
// finish, or abandons them when Stop's context ends first.
//
// There is no global worker lock. Options.Parallelism (default 1) bounds
// the jobs running at once, across every process, among the migrations
// whose Work the worker has: N jobs of one migration, or jobs of several.
// The bound is checked and the job claimed in one short transaction,
// serialised by a transaction-scoped advisory lock, so nothing depends on
// session state and workers run through a transaction-pooling PgBouncer.
// Hosts sharing a database with different Work do not share a budget, and
// a worker never touches a migration whose Work it lacks (a rolling
// deploy, a rollback, another service): it leaves it alone and reports it
// (a log line, LeftAlone).
//
// Workers pick work in the same order: failed migrations that still have
// attempts left first, then running migrations, then active ones, each by
// ID. Each step is a method of Handler (FindJob, ExecuteJob), so a host can
// wrap or replace one via Options.Handler; the default Handler is the
// worker itself.
//
// # Crash safety
//
// Claiming a job counts its attempt and sets a lease (JobLease, 15s) in a
// transaction of its own, committed before the Work runs; the worker renews
// the lease every JobLease/3 while the Work runs. A job whose worker died
// stays running until its lease expires, about JobLease later, and is then
// taken over; a job that kills its worker every time still runs out of
// attempts. A worker that finds its job taken over (it stalled past its
// lease) cancels the Work, whose transaction rolls back. A Work that panics
// is recovered and its attempt fails; a Work that runs past JobTimeout is
// cancelled (and a server-side statement_timeout backs that up). A failure
// is recorded after the Work's transaction rolled back, outside it, so it
// is kept.
//
// # Pacing and observability
//
// A Throttler is asked before each job; while it says hold, the worker
// waits. The default, with a database, is a HealthThrottler: it holds while
// a streaming replica lags beyond a bound, while sessions wait on locks for
// long, or (optionally) while WAL is written faster than a bound.
// ReplicaLagThrottler is a stricter replica check (it also holds when fewer
// replicas stream than required). After each job the worker paces by the
// job's duration: when jobs get suddenly and markedly slower than the
// migration's usual rate (the database is busier), the next ones wait in
// proportion, until the slower rate has become the usual one (about a
// dozen jobs). BatchPause adds a fixed pause
// (default none). Workers log each job with slog (keys migration, job,
// start, end, attempt, duration) and report jobs, holds and finished
// migrations to an Observer (Options.Observer): package prommetrics turns
// the events into Prometheus metrics. Hooks have pgx's tracer shape, like
// every Ferry package's: a job attempt gets JobStart, whose returned
// context the Work runs under (a span started there is the parent of the
// Work's own spans), and JobEnd with that context; holds and a
// migration's end are single calls.
//
// # Administration
//
// Admin (from a worker's Admin method) registers migrations, validating
// them first: the Work must be registered on the worker, the batch size
// positive, the table and key columns must exist in the catalog, bounds
// must be values of the key's type and not reversed, and Args must be JSON.
// Table names are parsed as [schema.]table identifiers and only ever reach
// SQL quoted by pgx.Identifier. Unset bounds are read from the table. Admin
// also pauses, resumes and retries migrations, reports Progress (rows done
// of the total, exact once every range is cut, the rate, an ETA, the failed
// jobs with their last error), and RequireFinished gates a deploy on
// migrations being finished. Package bbmcmd gives all this as commands
// (status, pause, resume, retry, run, wait, require) a host mounts into its
// own CLI.
package bbm
