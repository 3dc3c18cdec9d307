package enqueuer

import (
	"context"
	"fmt"
	"math"
	"strings"
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
	// Priority is the host's rank of the repository: with an Order on it
	// (OrderPriority), higher priorities start first. It is the host's to
	// set (NewRepository.Priority, Store.SetPriority), for instance from
	// the plan tier of the repository's namespace; it is not migration
	// state, so changing it leaves Version and UpdatedAt alone. Default 0.
	Priority int
	// RetryCount is how many times an aborted migration was retried.
	RetryCount int
	// SkipReason says why the repository was skipped (StateImportSkipped).
	SkipReason string
	// AbortReason says why the last attempt was aborted; it is kept while
	// the repository is retried so that its history stays readable.
	AbortReason string
	// DeferReason, when not empty, says why the repository waits: a
	// filter (Config.Defer) ruled it out for now. It stays in its state
	// (StateDefault or StateImportAborted) and is looked at again when the
	// filter changes (Config.DeferKey) or an administrator asks
	// (Enqueuer.Reconsider). Any transition clears it.
	DeferReason string
	// DeferKey names the filter rules under which the repository was
	// deferred; never empty while DeferReason is set.
	DeferKey string
	// DeferredAt is when it was deferred; zero when it is not.
	DeferredAt time.Time
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
	// Priority is Repository.Priority. Default 0.
	Priority int
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

// ListOptions selects repositories in one state, in Order (oldest in that
// state first by default).
type ListOptions struct {
	State State
	// Order is the order. Default OrderOldest.
	Order Order
	// ChangedBefore, when set, keeps only repositories that entered State
	// before it.
	ChangedBefore time.Time
	// Ready keeps only repositories that are not deferred (DeferReason
	// empty); Deferred keeps only deferred ones. At most one may be set.
	Ready, Deferred bool
	// PathPrefix, when set, keeps only repositories whose path starts with
	// it (compared byte by byte). "group/" selects a namespace.
	PathPrefix string
	// SkipReason, when set, keeps only repositories with that skip reason.
	SkipReason string
	// After, when set, continues a listing: only repositories after it in
	// Order are returned. Pass the last repository of the previous page
	// (only the fields Order sorts by are read).
	After *Repository
	// Limit caps the number returned; it must be positive.
	Limit int
}

// Validate checks opts as every Store does before listing: a known state and
// order, a positive limit, not both Ready and Deferred.
func (opts ListOptions) Validate() error {
	switch {
	case !opts.State.Valid():
		return fmt.Errorf("enqueuer: listing unknown state %q", opts.State)
	case opts.Limit <= 0:
		return fmt.Errorf("enqueuer: listing %s: limit must be positive, got %d", opts.State, opts.Limit)
	case !opts.Order.Valid():
		_, err := opts.Order.Keys()
		return err
	case opts.Ready && opts.Deferred:
		return fmt.Errorf("enqueuer: listing %s: Ready and Deferred exclude each other", opts.State)
	case len(opts.PathPrefix) > MaxPathLength:
		return fmt.Errorf("%w: path prefix of %d bytes", ErrInvalidPath, len(opts.PathPrefix))
	}
	return nil
}

// Match reports whether r belongs in the listing (ignoring Limit), as every
// Store must decide it. Store implementations that keep repositories in
// memory use Matcher, which decides many the same way, with Compare.
func (opts ListOptions) Match(r Repository) bool { return opts.Matcher()(r) }

// Matcher returns Match as a function that builds opts.Order's comparator
// once, for a Store that tests every repository it holds.
func (opts ListOptions) Matcher() func(Repository) bool {
	compare := opts.Order.comparator()
	return func(r Repository) bool {
		switch {
		case r.State != opts.State,
			!opts.ChangedBefore.IsZero() && !r.StateChangedAt.Before(opts.ChangedBefore),
			opts.Ready && r.DeferReason != "",
			opts.Deferred && r.DeferReason == "",
			!strings.HasPrefix(r.Path, opts.PathPrefix),
			opts.SkipReason != "" && r.SkipReason != opts.SkipReason:
			return false
		}
		return opts.After == nil || compare(*opts.After, r) < 0
	}
}

// Compare orders a before b (negative), after b (positive) or as b (zero,
// for the same repository) in opts.Order (OrderOldest if it is not valid).
// Stores that sort many repositories call opts.Order.Comparator once
// instead.
func (opts ListOptions) Compare(a, b Repository) int {
	return opts.Order.comparator()(a, b)
}

// Deferral defers a repository (see Repository.DeferReason).
type Deferral struct {
	// ID is the repository; From the state the caller read, StateDefault
	// or StateImportAborted. The deferral applies only if the repository
	// is still in it.
	ID   int64
	From State
	// Reason says why; Key names the filter rules. Both are required.
	Reason, Key string
	// At is the time recorded. Default: the store's current time.
	At time.Time
}

// Validate checks d as every Store does before deferring.
func (d Deferral) Validate() error {
	switch {
	case d.From != StateDefault && d.From != StateImportAborted:
		return fmt.Errorf("%w: only waiting repositories are deferred, not %s ones", ErrInvalidTransition, d.From)
	case d.Reason == "" || d.Key == "":
		return fmt.Errorf("enqueuer: deferring repository %d: Reason and Key are required", d.ID)
	}
	return nil
}

// The range of Repository.Priority: what the Postgres store's integer
// column holds, so that every Store accepts the same values.
const (
	MinPriority = math.MinInt32
	MaxPriority = math.MaxInt32
)

// checkPriority refuses a priority outside [MinPriority, MaxPriority].
func checkPriority(p int) error {
	if p < MinPriority || p > MaxPriority {
		return fmt.Errorf("%w: %d is outside [%d, %d]", ErrInvalidPriority, p, MinPriority, MaxPriority)
	}
	return nil
}

// Validate checks nr as every Store does before adding it: a valid path,
// a tag count of at least 0 and a priority in range.
func (nr NewRepository) Validate() error {
	if err := ValidatePath(nr.Path); err != nil {
		return err
	}
	if nr.TagCount < 0 {
		return fmt.Errorf("enqueuer: adding %s: negative tag count %d", nr.Path, nr.TagCount)
	}
	if err := checkPriority(nr.Priority); err != nil {
		return fmt.Errorf("enqueuer: adding %s: %w", nr.Path, err)
	}
	return nil
}

// PriorityChange sets Repository.Priority: of one repository (Path) or of
// every repository whose path starts with PathPrefix ("group/" for a
// namespace whose plan changed). Exactly one of Path and PathPrefix is set.
type PriorityChange struct {
	Path, PathPrefix string
	Priority         int
}

// Validate checks p as every Store does before changing priorities.
func (p PriorityChange) Validate() error {
	switch {
	case (p.Path == "") == (p.PathPrefix == ""):
		return fmt.Errorf("enqueuer: setting a priority: exactly one of Path and PathPrefix is required")
	case checkPriority(p.Priority) != nil:
		return fmt.Errorf("enqueuer: setting a priority: %w", checkPriority(p.Priority))
	case p.Path != "":
		return ValidatePath(p.Path)
	case len(p.PathPrefix) > MaxPathLength:
		return fmt.Errorf("%w: path prefix of %d bytes", ErrInvalidPath, len(p.PathPrefix))
	}
	return nil
}

// Match reports whether p selects r.
func (p PriorityChange) Match(r Repository) bool {
	if p.Path != "" {
		return r.Path == p.Path
	}
	return strings.HasPrefix(r.Path, p.PathPrefix)
}

// Counts is how many repositories are in each state.
type Counts struct {
	// States has an entry for every state, zero included.
	States map[State]int
	// Deferred counts the deferred among the waiting ones (StateDefault
	// and StateImportAborted).
	Deferred int
}

// Total is the number of repositories.
func (c Counts) Total() int {
	n := 0
	for _, v := range c.States {
		n += v
	}
	return n
}

// InProgress is the number of repositories in InProgressStates.
func (c Counts) InProgress() int {
	n := 0
	for _, s := range InProgressStates {
		n += c.States[s]
	}
	return n
}

// Waiting is the number of repositories that a run may start: new and
// aborted ones, deferred ones excluded.
func (c Counts) Waiting() int {
	return c.States[StateDefault] + c.States[StateImportAborted] - c.Deferred
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
	// retry count, timestamps and deferral, with a new Version. Otherwise
	// it fails with ErrStateChanged. The enqueuer also passes as before
	// what a transition would have made of the original record, to settle
	// a claim into another outcome in one compare-and-set.
	Revert(ctx context.Context, changed, before Repository) (Repository, error)
	// CountInProgress returns how many repositories are in InProgressStates.
	CountInProgress(ctx context.Context) (int, error)
	// Count returns how many repositories are in each state, and how many
	// waiting ones are deferred.
	Count(ctx context.Context) (Counts, error)
	// List returns repositories as described by opts.
	List(ctx context.Context, opts ListOptions) ([]Repository, error)
	// Defer records d (see Deferral) without changing the state or
	// StateChangedAt, so the repository keeps its place in the queue. It
	// fails with ErrNotFound, with ErrStateChanged when the repository is
	// no longer in d.From, and with an error wrapping ErrInvalidTransition
	// when d.From is not a waiting state.
	Defer(ctx context.Context, d Deferral) (Repository, error)
	// Reconsider clears the deferral of every deferred repository whose
	// DeferKey is not keep, and returns how many it cleared. Keys are never
	// empty, so keep "" clears them all.
	Reconsider(ctx context.Context, keep string) (int, error)
	// SetPriority sets the Priority of the repositories p selects, and
	// returns how many it changed (those that had another priority). It
	// changes nothing else: not Version, not UpdatedAt, not a repository's
	// place in other orders. A Path that names no repository is
	// ErrNotFound; a PathPrefix may select none.
	SetPriority(ctx context.Context, p PriorityChange) (int, error)
	// LastStarted returns the latest PreImportingAt of any repository (the
	// last pre-import started, first or retried); zero when none was.
	LastStarted(ctx context.Context) (time.Time, error)
}

// Apply returns r after c, as every Store must compute it: r must still be
// in c.From (else ErrStateChanged) and c.Event must be allowed from it (else
// a *TransitionError). The new state's timestamp, StateChangedAt and
// UpdatedAt become at; Version grows by one; EventRetry increments
// RetryCount and EventReset sets it to zero; EventSkip records c.Reason
// as the skip reason, EventAbort as the abort reason;
// EventReset clears the skip reason; every transition clears a deferral.
// Store implementations that keep repositories in memory use it directly.
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
	r.DeferReason, r.DeferKey, r.DeferredAt = "", "", time.Time{}
	switch c.Event {
	case EventRetry:
		r.RetryCount++
	case EventReset:
		r.RetryCount, r.SkipReason = 0, ""
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
	out.Path, out.TagCount, out.Priority, out.CreatedAt = r.Path, r.TagCount, r.Priority, r.CreatedAt
	out.Version = r.Version + 1
	out.UpdatedAt = at
	return out, nil
}

// ApplyDeferral returns r after d, as every Store must compute it.
func (r Repository) ApplyDeferral(d Deferral, at time.Time) (Repository, error) {
	if err := d.Validate(); err != nil {
		return r, err
	}
	if r.State != d.From {
		return r, stateChanged(r, d.From)
	}
	r.DeferReason, r.DeferKey, r.DeferredAt = d.Reason, d.Key, at
	r.Version++
	r.UpdatedAt = at
	return r, nil
}

func stateChanged(r Repository, want State) error {
	return fmt.Errorf("%w: repository %d (%s) is %s, not %s", ErrStateChanged, r.ID, r.Path, r.State, want)
}
