// Package dashboard is a status page for a host's Ferry migrations,
// imports and leases that the host mounts in its own HTTP server: what is
// running, how far it got, what failed and why, and buttons to pause,
// resume and retry. It is a library piece, not a separate app: it reads
// the host's own Ferry objects on each request (bbm's Admin, the
// enqueuer's Store and Enqueuer, the import server's store, lease
// Lockers), renders pages with html/template on the server and needs no
// JavaScript build step; a few lines of plain JavaScript reload the page
// every few seconds, and every page works without them.
//
//	h, err := dashboard.New(dashboard.Config{
//		Prefix:       "/ferry",
//		Migrations:   worker.Admin(),            // bbm
//		Repositories: store,                     // enqueuer.Store
//		Imports:      enq,                       // *enqueuer.Enqueuer: retry/cancel buttons
//		Forecast:     enq,                       // *enqueuer.Enqueuer: time left, by tag count
//		Capacity:     capacity,                  // enqueuer.Config.Capacity
//		Leases:       []dashboard.LeaseKey{{Title: "enqueuer", Key: enqueuer.DefaultLeaseKey, Locker: locker}},
//		Authorize:    onlyAdmins,                // nil: read-only
//	})
//	mux.Handle("/ferry/", h)
//
// # Pages
//
// Paths are relative to Config.Prefix.
//
//	GET /                         overview: each migration's state, progress, rows/s, ETA and failed
//	                              jobs; the repositories per state, capacity in use and forecast;
//	                              lease holders and expiries; the registry's outbox and live copies
//	GET /migrations/{name}        a migration: its facts, last errors, one page of jobs
//	                              (?status=running|failed|finished, ?after=<job id>, ?limit=1..500)
//	GET /imports                  repositories per state, one page in path order
//	                              (?state=<enqueuer.State>, ?prefix=<path prefix>, ?after=<path>,
//	                              ?limit=1..500), the imports in progress with their age, the
//	                              forecast by tag count, the latest aborted and skipped ones
//	                              with their reasons
//	GET /repository?path=<path>   one repository: its states' history and the registry's record
//
// Every page is a value of this package (Overview, MigrationPage,
// ImportsPage, RepositoryPage) built from the stores on the request, never
// from memory kept between requests, with one exception: the enqueuer's
// forecast (Config.Forecast), which reads up to 10,000 waiting
// repositories, is made in the background (no page waits for it; the
// first shows that it is being made), serves the pages for
// Config.ForecastMaxAge (30s) and is then made again; it says when it
// was made. Every listing is one limited query on
// an index (bbm's jobs by (migration_id, id), the enqueuer's repositories
// by (state, path) and (state, state_changed_at)), so pages stay fast with
// hundreds of thousands of repositories (BenchmarkPages100k).
//
// # JSON
//
// The same values, as JSON, with the same query parameters:
//
//	GET /api/overview             Overview
//	GET /api/migrations/{name}    MigrationPage
//	GET /api/imports              ImportsPage
//	GET /api/repository?path=     RepositoryPage
//
// Field names are the json tags of those types (snake_case); times are RFC
// 3339; durations are seconds (Seconds), null when unknown. An error is
// answered with its status and an ErrorBody: {"error": "..."}.
//
// # Actions
//
// Actions are off unless the host sets Config.Authorize: the dashboard is
// read-only by default, shows no buttons and refuses every POST (403).
// With Authorize, each action is a POST of a form to /actions (fields
// action, target, csrf): pause_migration, resume_migration,
// retry_migration (bbm Admin.Pause, Resume, RetryFailed), retry_import
// (Enqueuer.ResetSkipped of one skipped repository), cancel_import
// (Enqueuer.ForceCancel) and break_lease (lease.Breaker). Authorize sees
// the request and the Action and returns nil to allow it; its error is
// answered 403 with its message.
//
// Cross-site request forgery is stopped twice: net/http's
// CrossOriginProtection refuses POSTs that a browser marks as cross-origin
// (Sec-Fetch-Site, Origin), and every form carries a token, an HMAC of a
// random session id kept in an HttpOnly, SameSite=Strict cookie, under a
// key only the server knows (Config.CSRFKey, random per process by
// default). A POST without the cookie or with a token that does not match
// it is 403. A successful action redirects (303) to the page it acted on,
// which shows what was done; an API client that sends Accept:
// application/json gets {"done": ..., "target": ...} instead.
//
// # Bad input
//
// A malformed or unknown query parameter, or one given twice, is 400 and
// names it; an unknown migration, repository or lease is 404; an action
// the target's state does not allow (pausing a finished migration,
// retrying a repository that is not skipped) is 409. A refused request
// changes nothing. Repository paths, migration names and error messages
// are attacker-influenced text: html/template escapes them in every
// context, and the pages' Content-Security-Policy allows no inline script
// or style and no framing.
package dashboard
