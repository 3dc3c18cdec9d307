// Package importserver is the registry side of the repository import
// protocol that package enqueuer drives: a container registry embeds it to
// be migrated by Ferry (or by anything that speaks GitLab's import API).
//
// # The import API
//
// (*Server).Handler serves, under any prefix the host chooses:
//
//	PUT    /gitlab/v1/import/<path>/?import_type=pre|final   start (202)
//	GET    /gitlab/v1/import/<path>/                         status (200)
//	DELETE /gitlab/v1/import/<path>/[?force=true]            cancel (202)
//
// A start records the import in the Store and runs it in the background
// with the host's Importer (a *transfer.Importer reading the source layout
// into the host's transfer.Sink). Refusals use the codes the coordinator
// understands: 200 nothing to do, 404 unknown repository, 409 already
// importing, 424 final import without a completed pre-import, 425 final
// import while the pre-import runs, 429 at Config.MaxConcurrentImports
// (enqueuer maps it to ErrTooManyImports), 400 bad path or import type.
// GET answers a StatusResponse: "status" and "detail" with exactly the
// strings of enqueuer.RegistryStatus, plus the run's type, owner, times,
// counts and last error, and, while this process runs the import and its
// plan is known, its "progress": the units of the plan done (blob
// transfers, tag writes) of its total, since the plan, as of the answer (what
// enqueuer.ImportStatus.Progress decodes; the coordinator's forecast
// reads it). Progress is kept in memory by the process running
// the import: another instance's run has none, nor has a run whose
// Importer does not pass its context on to a *transfer.Importer (see
// Config.Importer). Every request is authorized (Config.Authorize,
// e.g. BearerSecret with a constant-time comparison) before its path or
// body is read.
//
// # Outcomes and the outbox
//
// Every outcome (pre_import_complete, pre_import_failed,
// pre_import_canceled, import_complete, import_failed, import_canceled) is
// written to the Store's outbox in the same statement that records it,
// then PUT to the coordinator's notification endpoint (what
// enqueuer.Handler serves) until it answers 2xx, with capped exponential
// backoff and jitter. The outbox lives in Postgres, so deliveries survive
// restarts and kill -9; a notification may be delivered twice (the
// coordinator answers 200 to a duplicate) but never lost, and a
// repository's outcomes are delivered in order. A notification the
// coordinator keeps refusing (4xx such as "wrong migration state") is
// given up after NotifyConfig.MaxRefusals and kept as failed. Pending and
// failed deliveries and the age of the oldest pending one are reported
// through Observer.OutboxChecked (prommetrics turns them into gauges).
//
// The Observer's hooks have pgx's tracer shape, like every Ferry
// package's: an API request, an import and a delivery attempt get XStart,
// whose returned context the operation runs under (a span started in
// ImportStart is the parent of the Importer's spans, transfer's hooks
// included), and XEnd with that context; stale imports, guarded writes and
// outbox stats are single calls.
//
// # Crashes, timeouts and shutdown
//
// Import state changes are compare-and-set on (path, run). A server
// records a heartbeat for the imports it runs; an import whose heartbeat
// is older than Config.StaleAfter, or that was left by an earlier process
// with the same Config.Instance, is ended as failed (and notified) by
// Start or by any server's periodic sweep, never left "in progress". Each
// run is bounded by Config.PreImportTimeout or Config.ImportTimeout.
// Shutdown stops accepting starts, cancels the running imports and waits
// until their outcomes are recorded.
//
// # Writes during imports
//
// (*Server).WriteGuard wraps the registry's own /v2/ API: during a final
// import the repository is read-only (503 with Retry-After, or the
// registry's own error through GuardConfig.Refuse), and a final import
// waits for writes already let through; during a pre-import a write
// cancels the pre-import (as GitLab's registry did) or is allowed
// (GuardConfig.AllowPreImportWrites).
//
// # Storage
//
// PostgresStore keeps the state in Ferry's schema (storage.Migrate creates
// ferry_importserver_imports and ferry_importserver_notifications). It
// needs no session state: it works through PgBouncer in transaction
// pooling mode. importservertest.Store is the in-memory fake, and
// importservertest.TestStore the conformance suite both pass.
package importserver
