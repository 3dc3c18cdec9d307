// Package bbm runs batched background migrations: it backfills or rewrites
// the rows of a large Postgres table online, one short transaction per
// range of keys, so that a table of billions of rows changes without long
// locks, long transactions or downtime.
//
// # Model
//
// A Migration names a target table (schema-qualified), a column, a key
// range [MinKey, MaxKey], a batch size, a batching Strategy and the Work
// that processes a batch. Its Status moves paused → active → running →
// finished, or to failed with an ErrorCode. Workers cut the range into Jobs
// as they go: a Job is a key range with a status (running, finished,
// failed), an attempt count and a lease. Both live in Ferry's schema
// (storage/migrations/0003_bbm.sql) behind the Store interface;
// PostgresStore is the real Store, bbmtest.Store an in-memory fake, and
// bbmtest.TestStore the conformance suite both pass.
//
// # Work
//
// A host implements Work (or wraps a function with WorkFunc) and registers
// it on a worker with Register; nothing is registered globally. Work.Do gets
// a Batch (table, column, key column, Start and End) and the job's
// transaction, which commits when Do returns nil.
//
// A range applies exactly once by default: the job is recorded finished
// inside the Work's transaction, so a worker killed at any point either
// committed both or neither, and even a non-idempotent Work (SET n = n + 1)
// is safe. This holds when the bbm tables and the migrated table share a
// database, the normal case. Work that writes elsewhere (another database,
// object storage, an API) declares DeliveryAtLeastOnce with WithDelivery:
// it runs outside a transaction of bbm's, the job is recorded after it
// returns, and a range may run again after a crash, so it must be
// idempotent. Each "job started" log line carries the delivery.
//
// # Workers
//
// NewSyncWorker gives a worker for deploy steps and tools: Run waits for the
// worker lock (up to LockWaitTimeout), runs up to MaxJobsPerBatch jobs or
// until BatchTimeout, releases the lock, pauses at random, and repeats until
// nothing is left. NewWorker gives a background worker for a server
// process: each round it only tries the lock, and it waits Interval (with
// jitter) between rounds, backing off exponentially up to MaxBackoff while
// idle or failing; Stop lets the running job finish, or abandons it when
// Stop's context ends first.
//
// Both pick work in the same order: failed migrations that still have
// attempts left first, then running migrations, then active ones, each by
// ID; within a migration, failed jobs before new ranges. A migration whose
// jobs are all finished becomes finished. Each step is a method of Handler
// (GrabLock, FindJob, ExecuteJob), so a host can wrap or replace one via
// Options.Handler; the default Handler is the worker itself.
//
// # Crash safety
//
// The worker lock is a session-level advisory lock on a connection of its
// own, so only one worker in all processes runs jobs at a time and a dead
// process's lock goes away with its connection; no transaction stays open
// between jobs. Claiming a job counts its attempt and sets a lease
// (JobTimeout + LeaseGrace) in a transaction of its own, committed before
// the Work runs: a job whose worker died stays running until its lease
// expires and is then taken over, and a job that kills its worker every
// time still runs out of attempts (MaxJobAttempts) instead of looping. Success
// is recorded in the Work's transaction (exactly-once) or right after it
// (at-least-once); a failure is recorded after the Work's transaction
// rolled back, outside it, so it is kept. A Work that
// panics is recovered and its attempt fails; a Work that runs past
// JobTimeout is cancelled (and a server-side statement_timeout backs that
// up). A failed attempt is retried after RetryBackoff, doubling.
//
// # Batching
//
// IntegerRange (the default) cuts [MinKey, MaxKey] of an integer column
// into consecutive ranges. NullKeys batches the rows WHERE column IS NULL in
// the order of the leading integer column of a partial index WHERE column
// IS NULL; without such an index it refuses to start (ErrMissingNullIndex),
// since every batch would scan the table. With Options.Adaptive, the size of
// new jobs tracks a target job duration from the measured rate of the last
// jobs (smoothed, bounded growth per job, clamped).
//
// # Throttling and observability
//
// A Throttler is asked before each job; while it says hold, the worker
// waits. ReplicaLagThrottler holds while streaming replicas lag behind the
// primary. Workers log each job with slog (keys migration, job, start, end,
// attempt, duration) and report jobs, holds and finished migrations to an
// Observer (Options.Observer), for metrics and tracing without a metrics
// dependency here: package prommetrics turns the events into Prometheus
// metrics, and MultiObserver combines it with a host's own Observer. Without
// one, a worker calls an empty Observer.
//
// # Administration
//
// Admin (from a worker's Admin method) registers migrations, validating
// them first: the Work must be registered on the worker, the batch size
// positive, the range not reversed, and the table and column must exist in
// the catalog. Table names are parsed as [schema.]table identifiers and only
// ever reach SQL quoted by pgx.Identifier. Unset bounds are read from the
// table. Admin also pauses, resumes and retries migrations and reports
// Progress: the share of the key range done, the rate and an ETA.
package bbm
