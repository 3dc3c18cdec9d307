package enqueuer

import (
	"context"
	"fmt"
	"time"
)

// Repository is one container repository and its migration record.
type Repository struct {
	ID   int64
	Path string
	// State is where the migration is.
	State State
	// TagCount is the number of tags the host recorded; repositories with
	// more than Config.MaxTagsCount are skipped.
	TagCount int
	// RetryCount is how many times an aborted migration was retried.
	RetryCount int
	// SkipReason says why the repository was skipped (StateImportSkipped).
	SkipReason string
	// AbortReason says why the last attempt was aborted; it is kept while
	// the repository is retried so that its history stays readable.
	AbortReason string
	// Version grows by one with every change; compare-and-set operations
	// that must not act on a changed record check it.
	Version int64

	CreatedAt time.Time
	UpdatedAt time.Time
	// StateChangedAt is when the repository entered State (CreatedAt for
	// StateDefault). Selection and the stale guard order by it.
	StateChangedAt time.Time

	// When each state was last entered; zero if never.
	PreImportingAt  time.Time
	PreImportDoneAt time.Time
	ImportingAt     time.Time
	ImportDoneAt    time.Time
	AbortedAt       time.Time
	SkippedAt       time.Time
}

// NewRepository describes a repository to add to a Store.
type NewRepository struct {
	Path     string
	TagCount int
	// CreatedAt orders new repositories for selection (oldest first).
	// Default: the store's current time.
	CreatedAt time.Time
}

// Change is one compare-and-set transition.
type Change struct {
	// ID is the repository to change.
	ID int64
	// From is the state the caller read; the change applies only if the
	// repository is still in it.
	From State
	// Event is the transition to apply; it must be allowed from From.
	Event Event
	// Reason is recorded as the skip reason (EventSkip) or the abort reason
	// (EventAbort), and ignored for other events.
	Reason string
	// At is the time recorded for the new state. Default: the store's
	// current time.
	At time.Time
}

// ListOptions selects repositories in one state, oldest in that state first
// (by StateChangedAt, then ID: a stable order).
type ListOptions struct {
	State State
	// ChangedBefore, when set, keeps only repositories that entered State
	// before it.
	ChangedBefore time.Time
	// Limit caps the number returned; it must be positive.
	Limit int
}

// Store keeps the repositories and their migration state. Every method is
// safe for concurrent use. Transitions are compare-and-set: of several
// callers that read one state and change it, exactly one wins and the others
// get ErrStateChanged, so no update is lost and no repository is started
// twice.
//
// Implementations: PostgresStore, and enqueuertest.Store in memory; both
// pass enqueuertest.TestStore.
type Store interface {
	// Add stores a new repository in StateDefault. A repository with the
	// same path is ErrExists; an invalid path is ErrInvalidPath.
	Add(ctx context.Context, r NewRepository) (Repository, error)
	// Get returns the repository at path, or ErrNotFound.
	Get(ctx context.Context, path string) (Repository, error)
	// Transition applies c if the repository is still in c.From and returns
	// the changed repository. It fails with ErrNotFound, with a
	// *TransitionError when c.Event is not allowed from c.From, and with
	// ErrStateChanged when the repository is no longer in c.From. EventRetry
	// also increments RetryCount; EventSkip and EventAbort record c.Reason.
	Transition(ctx context.Context, c Change) (Repository, error)
	// Revert undoes a transition whose effect never happened (the registry
	// refused to start the import): if the repository is still exactly
	// changed (same Version), it is restored to before's state, reasons,
	// retry count and timestamps, with a new Version. Otherwise it fails
	// with ErrStateChanged.
	Revert(ctx context.Context, changed, before Repository) (Repository, error)
	// CountInProgress returns how many repositories are in InProgressStates.
	CountInProgress(ctx context.Context) (int, error)
	// List returns repositories as described by opts.
	List(ctx context.Context, opts ListOptions) ([]Repository, error)
}

// Apply returns r after c, as every Store must compute it: r must still be
// in c.From (else ErrStateChanged) and c.Event must be allowed from it (else
// a *TransitionError). The new state's timestamp, StateChangedAt and
// UpdatedAt become at; Version grows by one; EventRetry increments
// RetryCount; EventSkip and EventAbort record c.Reason. Store
// implementations that keep repositories in memory use it directly.
func (r Repository) Apply(c Change, at time.Time) (Repository, error) {
	if r.State != c.From {
		return r, stateChanged(r, c.From)
	}
	to, err := Next(c.From, c.Event)
	if err != nil {
		return r, err
	}
	r.State = to
	r.Version++
	r.UpdatedAt = at
	r.StateChangedAt = at
	switch c.Event {
	case EventRetry:
		r.RetryCount++
	case EventSkip:
		r.SkipReason = c.Reason
	case EventAbort:
		r.AbortReason = c.Reason
	}
	switch to {
	case StatePreImporting:
		r.PreImportingAt = at
	case StatePreImportDone:
		r.PreImportDoneAt = at
	case StateImporting:
		r.ImportingAt = at
	case StateImportDone:
		r.ImportDoneAt = at
	case StateImportAborted:
		r.AbortedAt = at
	case StateImportSkipped:
		r.SkippedAt = at
	}
	return r, nil
}

// RevertTo returns before as Revert must store it when r is still changed:
// before's migration fields with a Version past r's. It fails with
// ErrStateChanged when r is not changed (another change came in between).
func (r Repository) RevertTo(changed, before Repository, at time.Time) (Repository, error) {
	if r.ID != changed.ID || r.ID != before.ID {
		return r, fmt.Errorf("enqueuer: revert of repository %d with records of %d and %d", r.ID, changed.ID, before.ID)
	}
	if r.Version != changed.Version {
		return r, fmt.Errorf("%w: repository %d (%s) is at version %d, not %d", ErrStateChanged, r.ID, r.Path, r.Version, changed.Version)
	}
	out := before
	out.Path, out.TagCount, out.CreatedAt = r.Path, r.TagCount, r.CreatedAt
	out.Version = r.Version + 1
	out.UpdatedAt = at
	return out, nil
}

func stateChanged(r Repository, want State) error {
	return fmt.Errorf("%w: repository %d (%s) is %s, not %s", ErrStateChanged, r.ID, r.Path, r.State, want)
}
