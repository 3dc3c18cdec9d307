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
//	import_aborted ──resume_pre_import | resume_import | finish_*──▶ (what the registry reports)
//	any state but import_done ──skip──▶ import_skipped ──reset──▶ default
//
// Next computes a transition; one the machine does not allow is a
// *TransitionError that names both states. A Store keeps the repositories:
// per-state timestamps, the retry count, the skip and abort reasons, a
// deferral and a version. Its transitions are compare-and-set on the state
// read by the caller, so of two racing callers one wins and the other gets
// ErrStateChanged: no update is lost. PostgresStore keeps them in Ferry's
// schema (storage.Migrate); enqueuertest.Store in memory; both pass
// enqueuertest.TestStore. Store.List pages through a state in several
// orders (oldest, newest, smallest, by path) with filters (path prefix,
// skip reason, deferred or not), each served by an index; Store.Count
// counts the states.
//
// # Registry
//
// A RegistryClient starts pre-imports and final imports, reads their status
// and cancels them. HTTPRegistry speaks the registry's import API
// (PUT /gitlab/v1/import/<path>/?import_type=pre|final, GET, DELETE) with a
// timeout per attempt and bounded retries with backoff; 429 is
// ErrTooManyImports, 425 ErrTooEarly. enqueuertest.Registry is a fake with scriptable
// latency, capacity and failures.
//
// # Enqueuer
//
// New(Config) makes an Enqueuer; Run is one invocation, as a job system
// triggers it. All instances share one lease (DefaultLeaseKey, ttl
// DefaultLeaseTTL of 30 seconds, renewed every 10 while a run goes on); a
// Run that finds it held returns at once with an error wrapping
// lease.ErrHeld, which means another instance is already doing the work.
// Under the lease, Run first looks at stale imports (in their pass longer
// than Config.StaleAfter, a bounded window of Config.StaleBatch): it asks
// the registry, moves on what finished, leaves alone what still runs
// within its timeout (Config.PreImportTimeout, Config.ImportTimeout),
// cancels what runs past it and aborts it (or skips it as SkipCanceled
// when its retries are nearly used up, so it is not retried blindly),
// skips what the registry does not know (SkipNotFound) and aborts the
// rest. Then the Strategy fills the free capacity (Config.Capacity minus
// the repositories in InProgressStates):
//
//   - Once starts one repository per run, the behaviour before loop mode;
//   - Loop keeps starting one after the other until the capacity is full,
//     a deadline passes (250 s by default), the feature flag
//     (Config.Enabled) is off, or nothing is left;
//   - ParallelLoop (the default) keeps the whole free capacity starting at
//     once and refills a freed slot as soon as any answer comes back or
//     the run is woken (Enqueuer.Wake), without waiting for the slowest
//     start.
//
// Hosts may write their own Strategy on the Runner's methods.
//
// Each round starts the final imports of pre-imported repositories first,
// then retries aborted repositories (import type "retry") until they have
// been retried Config.MaxRetries times, after which they are skipped, then
// starts new ones (import type "next"), in Config.Order: oldest first by
// default, smallest first (OrderSmallest), the host's priority then age
// (OrderPriority: the host records a rank such as the plan tier in
// Repository.Priority when it adds a repository, and Store.SetPriority
// when a namespace's plan changes), or the host's own sort keys
// (OrderBy). Config.MinStartInterval spaces new starts out. Before an aborted repository is retried, the registry is asked
// for its status: a pass that finished moves it on, one that still runs
// takes it back to that pass to wait for its notification, 404 and native
// skip it, and anything else (failed, cancelled, unknown) retries it from
// the pre-import.
//
// Repositories with more than Config.MaxTagsCount tags are skipped. A
// filter (Config.Defer: a plan tier, a deny-listed namespace, a creation
// date) defers instead: the repository stays waiting and keeps its place,
// later runs pass over it without asking again, and it is looked at again
// when the filter's rules change (Config.DeferKey) or an administrator
// calls Reconsider. import_skipped is kept for real reasons (SkipReasons);
// ResetSkipped gives skipped repositories a new start.
//
// A repository is claimed by a compare-and-set transition before the
// registry is asked, and the claim is reverted when the registry answers
// 429 (the run then ends, nothing marked failed) or cannot be reached; a
// 404 or "already native" skips the repository, any other refusal aborts
// it. Every start and skip is logged with import_type,
// container_repository_id, container_repository_path and
// container_repository_migration_state.
//
// Run reads and writes on the primary (storage.UsePrimary), so the count
// of imports in progress never comes from a lagging replica.
//
// # Administration
//
// ResetSkipped, ForceCancel (cancel at the registry and skip as
// SkipForceCanceled), ReleaseLease (free a stuck holder's lease, with a
// lease.Breaker) and Reconsider (clear deferrals) are an administrator's
// operations; none of them needs the lease.
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
// 429, unreachable, native, not found, refused), skips with their reason,
// aborts, reconciliations, and the imports in progress against the
// capacity; HandlerOptions.Observer is told every notification's outcome.
// This is for metrics and tracing without a metrics dependency here:
// package prommetrics implements Observer with Prometheus, and
// MultiObserver combines it with a host's own. Hooks have pgx's tracer
// shape, like every Ferry package's: a run, a start asked of the registry
// and a notification get XStart, whose returned context the operation
// runs under (a span started in RunStart is the parent of the lease's and
// the registry calls' spans), and XEnd with that context; skips, aborts,
// reconciliations and capacity checks are single calls.
package enqueuer
