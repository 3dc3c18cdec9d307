// Package prommetrics turns the observer hooks of Ferry's packages into
// Prometheus metrics with client_golang. The core packages (bbm, enqueuer,
// storage, lease, transfer) depend on no metrics or tracing library: each
// exposes an Observer interface, and this package implements all of them.
//
// # Wiring
//
// Create the metrics once per process on a prometheus.Registerer, hand
// each package its observer, and serve the registry:
//
//	reg := prommetrics.NewRegistry() // or prometheus.DefaultRegisterer
//	metrics, err := prommetrics.New(reg, prommetrics.Options{})
//	mux.Handle("GET /metrics", prommetrics.Handler(reg))
//
//	storage.Open(ctx, storage.Config{..., Observer: metrics.Storage()})
//	bbm.NewWorker(db, bbm.Options{..., Observer: metrics.BBM()})
//	metrics.WatchMigrations(bbm.NewPostgresStore(db, bbm.PostgresStoreOptions{}))
//	locker := lease.Observe(pglease.New(db, pglease.Options{}), metrics.Lease())
//	enqueuer.New(enqueuer.Config{..., Locker: locker, Observer: metrics.Enqueuer()})
//	enqueuer.NewHandler(enqueuer.HandlerOptions{..., Observer: metrics.Enqueuer()})
//	transfer.New(src, dst, transfer.Options{..., Observer: metrics.Transfer()})
//	transfer.NewImporter(src, tr, sink, transfer.ImportOptions{..., Observer: metrics.Transfer()})
//
// Each package's MultiObserver combines these with a host's own observers
// (for tracing, say: see examples/tracing, which records OpenTelemetry
// spans through the same hooks). The hooks have pgx's tracer shape
// (XStart returns a context, XEnd gets it back); these observers return
// the context they are given and take durations from the End events.
// Without an observer a package calls an empty one; the hooks cost one call
// per event. With this package they cost
// a few hundred nanoseconds per bbm job (BenchmarkObserverEvent: 0.14-0.38µs
// on a shared 2-core machine), under 5% of a job loop on the in-memory store
// whose jobs do nothing at all (BenchmarkObserverOverhead); a job that
// touches a database takes milliseconds.
//
// # Labels
//
// Label values are bounded. Most come from enums the core packages define
// (statuses, results, reasons, import types); a value outside them is
// reported as "other" (or, for notifications with an unknown status, as
// "invalid"; for a registry status the enqueuer could not read, as
// "unknown"). Repository paths, digests, sticky keys, job ids and
// error messages are never labels: they stay on the events, for traces and
// logs. Three labels carry names the host chooses at configuration time:
// bbm migration names (registered by the host, validated by bbm), lease
// keys (one per kind of exclusive worker, like enqueuer.DefaultLeaseKey) and
// replica names (host:port/database from storage.Config). They are kept
// as they are, readable on dashboards, up to Options.MaxLabelValues
// distinct values per label (default 100); later values are reported as
// "other". That keeps the series count bounded even for a host that, say,
// takes a lease per repository.
//
// # Buckets
//
// Each histogram has buckets for what it measures (see buckets.go): bbm jobs
// from 5ms to their 2-minute timeout, batch sizes from 10 to a million
// keys, enqueuer runs up to the loop deadline (250s), registry calls up to
// their timeouts, notifications and lease renewals in the sub-millisecond
// to seconds range of one database round trip, blobs from a millisecond
// (a config) to half an hour (a multi-gigabyte layer), repositories up to
// an hour and whole import passes up to 16 hours (the seed's importer took
// 10-14 hours for 258 repositories).
//
// # Metrics
//
// All names start with ferry_. Counters end in _total; durations are in
// seconds.
//
//	name                                          type       labels                         meaning
//	ferry_bbm_jobs_started_total                  counter    migration                      job attempts started
//	ferry_bbm_jobs_finished_total                 counter    migration                      job attempts that succeeded
//	ferry_bbm_jobs_failed_total                   counter    migration, code                job attempts that failed; code is the bbm ErrorCode (job_failed, job_panicked, job_timeout, job_cancelled) or unrecorded
//	ferry_bbm_job_duration_seconds                histogram  migration, outcome             a job attempt's transaction time; outcome finished or failed
//	ferry_bbm_job_batch_size                      histogram  migration                      rows per job attempt
//	ferry_bbm_next_batch_size                     gauge      migration                      batch size of the next new job (adaptive sizing); dropped when the migration is done
//	ferry_bbm_rows_processed_total                counter    migration                      rows in finished jobs' ranges; rate() is the backfill's rows/s
//	ferry_bbm_job_rows_per_second                 gauge      migration                      rate of the last finished job; dropped when the migration is done
//	ferry_bbm_throttled_total                     counter    -                              times the Throttler held jobs back
//	ferry_bbm_throttled_seconds_total             counter    -                              time spent held back by the Throttler
//	ferry_bbm_migrations_done_total               counter    status                         migrations this process finished or failed
//	ferry_bbm_migrations                          gauge      status                         migrations per status, read from the store at scrape time (WatchMigrations)
//	ferry_enqueuer_runs_total                     counter    stopped                        enqueuer runs by why they stopped (capacity_full, nothing_left, deadline, disabled, once, too_many_imports, registry_unavailable, too_many_aborts, lease_held, error)
//	ferry_enqueuer_run_duration_seconds           histogram  -                              duration of a run
//	ferry_enqueuer_starts_total                   counter    import_type, result            imports asked of the registry; import_type next, retry, final; result accepted, too_many_imports (HTTP 429), registry_unavailable, cancelled, native, not_found, refused
//	ferry_enqueuer_start_duration_seconds         histogram  import_type                    the registry call that starts an import
//	ferry_enqueuer_skips_total                    counter    reason                         repositories skipped: too_many_tags, too_many_retries, native_import, not_found, migration_canceled, migration_forced_canceled
//	ferry_enqueuer_aborts_total                   counter    cause                          repositories aborted: refused (by the registry), stale (not running as recorded) or canceled (ran past its timeout)
//	ferry_enqueuer_imports_in_progress            gauge      -                              repositories pre-importing or importing, as last counted on the primary
//	ferry_enqueuer_import_capacity                gauge      -                              imports allowed at once, as last asked
//	ferry_enqueuer_notifications_total            counter    status, outcome                notifications; status as sent (or invalid); outcome applied, duplicate, wrong_state, not_found, bad_request, unauthorized, error
//	ferry_enqueuer_notification_duration_seconds  histogram  -                              time to answer a notification
//	ferry_enqueuer_reconciled_total               counter    status, outcome                aborted repositories reconciled with the registry before their retry; status as the registry reported (or unknown); outcome retried, resumed, finished, skipped
//	ferry_enqueuer_repositories                   gauge      state                          repositories per migration state, read at scrape time (WatchEnqueuer)
//	ferry_enqueuer_repositories_deferred          gauge      -                              waiting repositories a filter defers, read at scrape time (WatchEnqueuer)
//	ferry_enqueuer_forecast_known                 gauge      -                              1 once an import finished and the forecast means something (WatchEnqueuer)
//	ferry_enqueuer_forecast_remaining_seconds     gauge      -                              forecast time until every repository that can start is imported, from durations by tag-count bucket and the capacity (WatchEnqueuer; absent until known)
//	ferry_storage_reads_total                     counter    target, reason                 routed reads; target primary or replica; reason caught_up, use_primary, no_replicas, replicas_behind, replicas_down
//	ferry_storage_replica_lag_bytes               gauge      replica                        WAL not yet replayed at the last check
//	ferry_storage_replica_up                      gauge      replica                        1 after a good check, 0 after a failed check or read
//	ferry_storage_replica_checks_total            counter    replica, result                replica position checks; result ok or error
//	ferry_storage_replica_check_duration_seconds  histogram  replica                        duration of a replica check
//	ferry_storage_replica_fallbacks_total         counter    replica                        replica reads that failed on the connection and ran on the primary
//	ferry_lease_acquires_total                    counter    key, result                    Acquire calls; result acquired, held (another holder has the key), error
//	ferry_lease_held                              gauge      key                            leases this process holds now
//	ferry_lease_renewals_total                    counter    key, result                    renewals; result ok, lost, error
//	ferry_lease_renew_duration_seconds            histogram  key                            renewal latency
//	ferry_lease_lost_total                        counter    key                            leases found lost (expired or taken over) at a renewal or release
//	ferry_lease_release_failures_total            counter    key                            releases that failed, leaving the lease to expire
//	ferry_lease_fence_checks_total                counter    key, result                    fence checks (pglease.FenceWith); result ok, fenced (a stale holder's write refused), error
//	ferry_transfer_blobs_total                    counter    method                         blobs transferred; method streamed (through this process), server_side (copied by GCS), skipped (already there)
//	ferry_transfer_bytes_total                    counter    method                         bytes of those blobs, by the same method
//	ferry_transfer_blob_failures_total            counter    reason                         failed blob transfers; reason corrupt_in_transit, corrupt_at_rest, missing, bucket_not_found, invalid_digest, cancelled, other
//	ferry_transfer_blob_duration_seconds          histogram  method                         time per successful blob transfer, retries included
//	ferry_transfer_retries_total                  counter    op, cause                      retried storage operations; op copy, server_side_copy, read, stat, list, write; cause throttled, server_error, timeout, truncated, connection, corrupt, source_changed, other
//	ferry_transfer_repositories_total             counter    pass, outcome                  repositories finished; pass pre_import or final_import; outcome imported, failed, too_large, dry_run
//	ferry_transfer_repository_duration_seconds    histogram  pass                           time to import one repository
//	ferry_transfer_passes_total                   counter    pass, result                   import passes; result ok or error
//	ferry_transfer_pass_duration_seconds          histogram  pass                           duration of an import pass
//	ferry_importserver_requests_total             counter    op, code                       import API requests; op start, status, cancel, invalid; code the HTTP status answered
//	ferry_importserver_request_duration_seconds   histogram  op                             time to answer an import API request
//	ferry_importserver_imports_running            gauge      -                              imports this process runs now
//	ferry_importserver_imports_total              counter    type, result                   imports run to an end; type pre or final; result complete, failed, canceled, unrecorded
//	ferry_importserver_import_duration_seconds    histogram  type                           duration of an import
//	ferry_importserver_stale_imports_total        counter    type                           imports of a dead process found and ended as failed
//	ferry_importserver_guarded_writes_total       counter    action                         writes WriteGuard acted on; refused, canceled_pre_import, allowed_during_pre_import, unavailable
//	ferry_importserver_notification_attempts_total counter    result                         outcome deliveries; result delivered, retry, give_up
//	ferry_importserver_notification_attempt_duration_seconds histogram  -                              duration of a delivery attempt
//	ferry_importserver_notifications_pending      gauge      -                              undelivered notifications in the outbox (all instances)
//	ferry_importserver_notifications_failed       gauge      -                              notifications given up after repeated refusals
//	ferry_importserver_notification_oldest_pending_seconds gauge      -                              age of the oldest undelivered notification (0 when none)
package prommetrics
