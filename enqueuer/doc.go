// Package enqueuer moves container repositories to a registry's new
// metadata store, as many at a time as the registry allows, without ever
// starting one twice, and takes the registry's completion notifications
// without being fooled by a lagging replica.
//
// # State machine
//
// Each Repository has a State:
//
//	default ──start_pre_import──▶ pre_importing ──finish_pre_import──▶ pre_import_done
//	pre_import_done ──start_import──▶ importing ──finish_import──▶ import_done
//	pre_importing | pre_import_done | importing ──abort──▶ import_aborted
//	import_aborted ──retry──▶ pre_importing
//	default | import_aborted ──skip──▶ import_skipped
//
// Next computes a transition; one the machine does not allow is a
// *TransitionError that names both states. A Store keeps the repositories:
// per-state timestamps, the retry count, the skip and abort reasons and a
// version. Its transitions are compare-and-set on the state read by the
// caller, so of two racing callers one wins and the other gets
// ErrStateChanged: no update is lost. PostgresStore keeps them in Ferry's
// schema (storage.Migrate); enqueuertest.Store in memory; both pass
// enqueuertest.TestStore.
//
// # Registry
//
// A RegistryClient starts pre-imports and final imports, reads their status
// and cancels them. HTTPRegistry speaks the registry's import API
// (PUT /gitlab/v1/import/<path>/?import_type=pre|final, GET, DELETE) with a
// timeout per attempt and bounded retries with backoff; 429 is
// ErrTooManyImports. enqueuertest.Registry is a fake with scriptable
// latency, capacity and failures.
//
// # Enqueuer
//
// New(Config) makes an Enqueuer; Run is one invocation, as a job system
// triggers it. All instances share one lease (DefaultLeaseKey); a Run that
// finds it held returns at once with an error wrapping lease.ErrHeld, which
// means another instance is already doing the work. Under the lease, Run
// first settles stale imports (pre-importing longer than 30 minutes,
// importing longer than 10, by default): it asks the registry, moves on
// what completed, cancels what still runs and aborts it. Then the Strategy
// fills the free capacity (Config.Capacity minus the repositories in
// InProgressStates):
//
//   - Once starts one repository per run, the behaviour before loop mode;
//   - Loop keeps starting one after the other until the capacity is full,
//     a deadline passes (250 s by default), the feature flag
//     (Config.Enabled) is off, or nothing is left;
//   - ParallelLoop does the same but starts the whole free capacity at once,
//     concurrently, so filling it takes about one registry round trip.
//
// Hosts may write their own Strategy on the Runner's methods.
//
// Each round starts the final imports of pre-imported repositories first,
// then retries aborted repositories (import type "retry") until they have
// been retried Config.MaxRetries times, after which they are skipped, then
// starts new ones (import type "next"), oldest first. Repositories with more
// than Config.MaxTagsCount tags, or that Config.Exclude rules out, are
// skipped with the reason. A repository is claimed by a compare-and-set
// transition before the registry is asked, and the claim is reverted when
// the registry answers 429 (the run then ends, nothing marked failed) or
// cannot be reached; any other refusal aborts that repository. Every start
// and skip is logged with import_type, container_repository_id,
// container_repository_path and container_repository_migration_state.
//
// Run reads and writes on the primary (storage.UsePrimary), so the count
// of imports in progress never comes from a lagging replica.
//
// # Notifications
//
// Handler is the http.Handler the registry calls when an import finishes:
// PUT .../repositories/<path>/migration/status with a JSON status
// (pre_import_complete, pre_import_failed, import_complete, import_failed)
// and an optional reason, authenticated with a shared secret compared in
// constant time. It applies the transition by compare-and-set, answers 200
// for a duplicate of a notification already applied, 400 "wrong migration
// state (<state>)" when the state does not fit, and calls
// HandlerOptions.OnChange after a change so that the host can run the
// enqueuer again. It reads and writes only on the primary: the import was
// started a moment ago, and a replica that has not replayed that yet would
// report the old state — the failure this package exists to avoid.
//
// # Observability
//
// Config.Observer is told about every run (why it stopped, how long it
// took), every start the registry was asked for (StartResult: accepted,
// 429, unreachable, native, refused), skips with their reason, aborts, and
// the imports in progress against the capacity; HandlerOptions.Observer is
// told every notification's outcome. This is for metrics and tracing
// without a metrics dependency here: package prommetrics implements
// Observer with Prometheus, and MultiObserver combines it with a host's own.
package enqueuer
