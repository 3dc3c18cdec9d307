package importserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Store keeps the import records and the notification outbox. Every change
// of an import is a compare-and-set on its (Path, Run) and status, and
// every change that ends an import enqueues its notification atomically
// with it (in Postgres, in the same statement): an outcome is never
// recorded without its notification, nor notified without being recorded.
//
// Implementations: PostgresStore, and importservertest.Store (in memory).
// Both pass importservertest.TestStore. Methods are safe for concurrent
// use; several Servers (registry instances) may share one store.
type Store interface {
	// Get returns the repository's import record, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, path string) (Import, error)

	// Begin records a new run of an import if the rules of CheckBegin
	// allow it, atomically with the count of imports in progress; a
	// refusal is a *RefusedError. The new run supersedes the repository's
	// undelivered outcomes of earlier runs: they are never sent (the
	// coordinator has moved on, and an old outcome arriving during the new
	// run would be applied to it). With req.RequireRecord, a repository
	// without a record is refused with an error wrapping ErrNotFound.
	Begin(ctx context.Context, req BeginRequest) (Import, error)

	// Finish records the end of a run: from its in-progress status to
	// Outcome.Status, with its notification. It fails with ErrStateChanged
	// when the run is no longer in progress (it was force-canceled or
	// found stale meanwhile), and then changes nothing. With o.Claim, the
	// notification is claimed in the same step (as ClaimNotifications
	// would, had it been due at once) and returned, unless an older one of
	// the repository is pending; otherwise the notification is nil.
	Finish(ctx context.Context, o Outcome) (Import, *Notification, error)

	// Abandon deletes the record of a repository's first run (Run 1)
	// while it is in progress, as if it had never started: no outcome, no
	// notification. The Handler starts a repository's first pre-import
	// before the repository's existence is known, and abandons it when it
	// does not exist. It fails with ErrStateChanged when ref is not the
	// record's run, not a first run, or no longer in progress, and then
	// changes nothing.
	Abandon(ctx context.Context, ref RunRef) error

	// RequestCancel asks a running import to stop (its owner sees it at
	// its next Heartbeat and records the cancellation). It fails with a
	// *RefusedError wrapping ErrNotInProgress when nothing runs.
	RequestCancel(ctx context.Context, path string) (Import, error)

	// ForceCancel ends a running import as canceled at once, with its
	// notification, whether or not any owner still runs it. It fails with
	// a *RefusedError wrapping ErrNotInProgress when nothing runs.
	ForceCancel(ctx context.Context, path, detail string) (Import, error)

	// Heartbeat records that owner still runs the given runs and returns
	// those of them that are still in progress and still owner's (with
	// CancelRequested set when a cancellation was asked). A run missing
	// from the answer was ended by someone else: its owner must stop it
	// without recording anything.
	Heartbeat(ctx context.Context, owner string, runs []RunRef) ([]Import, error)

	// FailStale ends, with their notifications, the imports in progress
	// whose owner is req.Owner (when not empty) or whose heartbeat is older
	// than req.StaleAfter (when positive): as canceled when a cancellation
	// had been asked, as failed otherwise. It returns them.
	FailStale(ctx context.Context, req StaleRequest) ([]Import, error)

	// ClaimNotifications leases up to req.Limit pending notifications that
	// are due, oldest first, at most one per repository (the oldest
	// pending one), so that a repository's outcomes are delivered in
	// order. Notifications leased by someone else are skipped until their
	// lease ends; those leased by an earlier process of req.Owner (another
	// req.Token) are taken over at once.
	ClaimNotifications(ctx context.Context, req ClaimRequest) ([]Notification, error)

	// RecordDeliveries records attempts to deliver claimed notifications
	// and releases their leases, all at once: a batch of deliveries is
	// recorded in one step. An invalid Delivery fails the call before
	// anything is recorded.
	RecordDeliveries(ctx context.Context, ds []Delivery) error

	// OutboxStats counts pending and failed notifications.
	OutboxStats(ctx context.Context) (OutboxStats, error)

	// PruneDelivered deletes notifications delivered (or superseded, by
	// creation time) longer ago than olderThan and returns how many.
	PruneDelivered(ctx context.Context, olderThan time.Duration) (int64, error)
}

// BeginRequest asks a Store to start an import.
type BeginRequest struct {
	Path string
	Type Type
	// Owner is the instance that will run it (Config.Instance).
	Owner string
	// MaxRunning is the most imports that may be in progress at once,
	// across every owner; 0 means no limit.
	MaxRunning int
	// AllowWithoutPreImport lets a final import start without a completed
	// pre-import (see Config.AllowFinalWithoutPreImport).
	AllowWithoutPreImport bool
	// RequireRecord refuses to start a repository that has no import
	// record yet (an error wrapping ErrNotFound), so that the caller can
	// check that it exists first and then call again without it: the
	// Handler's first attempt, which saves a read for every repository
	// imported before.
	RequireRecord bool
}

// Outcome is the end of one run, for Store.Finish.
type Outcome struct {
	Path string
	Run  int64
	// Status is the terminal status: Type.Outcome of the run's type.
	Status Status
	Detail string
	Counts Counts
	// Claim, when set, claims the outcome's notification for Claim.Owner
	// and Claim.Token for Claim.LeaseFor (Limit is ignored) in the same
	// step that records it, so that the caller delivers it without
	// reading the outbox again.
	Claim *ClaimRequest
}

// StaleRequest selects the imports Store.FailStale ends.
type StaleRequest struct {
	// Owner, when set, selects every import in progress it owns: a
	// process that starts with the Instance of one that died.
	Owner string
	// StaleAfter, when positive, selects every import in progress whose
	// heartbeat is older than that.
	StaleAfter time.Duration
	// Detail is recorded and notified as the reason.
	Detail string
}

// CheckBegin is the rule by which a Store accepts or refuses
// BeginRequest req for a repository whose record is cur (nil when it has
// none) while running imports are in progress. It returns nil or the
// reason (a sentinel): ErrAlreadyImported, ErrImportInProgress,
// ErrPreImportInProgress, ErrPreImportRequired or ErrTooManyImports, in
// that order of precedence.
//
// A pre-import may start again after any pre-import or failed or canceled
// final import (it is incremental); a final import needs the last run to
// be a completed pre-import, unless req.AllowWithoutPreImport. So after a
// failed or canceled final import the coordinator starts over with a
// pre-import (as enqueuer's retry does), and a late retry of a final start
// that crossed the failure's notification is refused instead of starting
// an import the coordinator has already given up on.
//
// The rule may look only at cur's Status and at running: PostgresStore
// evaluates it in Go for every status (a start is one statement) and
// checks the capacity condition, running < MaxRunning, in SQL.
func CheckBegin(cur *Import, req BeginRequest, running int) error {
	if cur != nil {
		switch {
		case cur.Status == StatusImportComplete:
			return ErrAlreadyImported
		case cur.Status == StatusImportInProgress:
			return ErrImportInProgress
		case cur.Status == StatusPreImportInProgress && req.Type == PreImport:
			return ErrImportInProgress
		case cur.Status == StatusPreImportInProgress:
			return ErrPreImportInProgress
		}
	}
	if req.Type == FinalImport && !req.AllowWithoutPreImport {
		if cur == nil || cur.Status != StatusPreImportComplete {
			return ErrPreImportRequired
		}
	}
	if req.MaxRunning > 0 && running >= req.MaxRunning {
		return ErrTooManyImports
	}
	return nil
}

// Validate checks a BeginRequest.
func (r BeginRequest) Validate() error {
	if err := ValidatePath(r.Path); err != nil {
		return err
	}
	if _, err := ParseType(string(r.Type)); err != nil {
		return err
	}
	if r.MaxRunning < 0 {
		return fmt.Errorf("importserver: negative MaxRunning %d", r.MaxRunning)
	}
	return nil
}

// Validate checks an Outcome: a terminal status and a positive run.
func (o Outcome) Validate() error {
	if err := ValidatePath(o.Path); err != nil {
		return err
	}
	if o.Run < 1 {
		return fmt.Errorf("importserver: outcome of %s: run %d, want >= 1", o.Path, o.Run)
	}
	if !o.Status.Valid() || o.Status.InProgress() {
		return fmt.Errorf("importserver: outcome of %s: %q is not a terminal status", o.Path, o.Status)
	}
	return nil
}

// NotificationState is where a notification is in the outbox.
type NotificationState string

// The notification states.
const (
	// NotificationPending: not delivered yet.
	NotificationPending NotificationState = "pending"
	// NotificationDelivered: the coordinator answered 2xx.
	NotificationDelivered NotificationState = "delivered"
	// NotificationFailed: the coordinator refused it for good (see
	// NotifyConfig.MaxRefusals); it stays in the outbox for inspection.
	NotificationFailed NotificationState = "failed"
	// NotificationSuperseded: a new run of the repository started before
	// it was delivered; it is never sent.
	NotificationSuperseded NotificationState = "superseded"
)

// Notification is an outcome in the outbox.
type Notification struct {
	ID     int64
	Path   string
	Run    int64
	Status Status
	Detail string
	State  NotificationState
	// Attempts counts delivery attempts, Refusals the answers that said
	// the notification itself was wrong (4xx other than 401, 403, 408,
	// 425 and 429).
	Attempts int
	Refusals int
	// LastCode is the HTTP status of the last attempt (0: no answer) and
	// LastError what went wrong.
	LastCode      int
	LastError     string
	CreatedAt     time.Time
	NextAttemptAt time.Time
	DeliveredAt   time.Time
}

// ClaimRequest asks a Store for notifications to deliver.
type ClaimRequest struct {
	// Owner is the Config.Instance of the claiming server and Token the
	// process (a new one each Start).
	Owner, Token string
	Limit        int
	// LeaseFor is how long the claim keeps others away.
	LeaseFor time.Duration
}

// DeliveryResult is how an attempt went.
type DeliveryResult string

// The delivery results.
const (
	// Delivered: 2xx; the notification leaves the outbox's queue.
	Delivered DeliveryResult = "delivered"
	// Retry: the notification is due again after Delivery.RetryIn.
	Retry DeliveryResult = "retry"
	// GiveUp: refused too often; the notification is marked failed.
	GiveUp DeliveryResult = "give_up"
)

// Delivery records one attempt, for Store.RecordDeliveries.
type Delivery struct {
	ID     int64
	Result DeliveryResult
	// Refused is true when the answer counts as a refusal.
	Refused bool
	// Code is the HTTP status (0: no answer), Err what went wrong.
	Code int
	Err  string
	// RetryIn is the backoff before the next attempt (Result Retry).
	RetryIn time.Duration
}

// OutboxStats is the state of the outbox.
type OutboxStats struct {
	// Pending notifications are not delivered yet; OldestPending is the
	// age of the oldest of them (0 when none).
	Pending       int
	OldestPending time.Duration
	// Failed notifications were given up.
	Failed int
}

// errorsIsAny reports whether err wraps one of targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// state is the notification state a delivery leads to.
func (d Delivery) state() (NotificationState, error) {
	switch d.Result {
	case Delivered:
		return NotificationDelivered, nil
	case Retry:
		return NotificationPending, nil
	case GiveUp:
		return NotificationFailed, nil
	}
	return "", fmt.Errorf("importserver: delivery of notification %d: unknown result %q", d.ID, d.Result)
}

// lastDeliveries checks ds and keeps the last attempt of each
// notification, in order.
func lastDeliveries(ds []Delivery) ([]Delivery, error) {
	last := make(map[int64]int, len(ds))
	for i, d := range ds {
		if _, err := d.state(); err != nil {
			return nil, err
		}
		last[d.ID] = i
	}
	if len(last) == len(ds) {
		return ds, nil
	}
	out := make([]Delivery, 0, len(last))
	for i, d := range ds {
		if last[d.ID] == i {
			out = append(out, d)
		}
	}
	return out, nil
}

// sortNotifications orders claimed notifications oldest first.
func sortNotifications(ns []Notification) {
	slices.SortFunc(ns, func(a, b Notification) int { return cmp.Compare(a.ID, b.ID) })
}
