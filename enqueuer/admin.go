package enqueuer

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
)

// ResetOptions selects the skipped repositories Enqueuer.ResetSkipped
// gives a new start. With no field set it resets every skipped repository.
type ResetOptions struct {
	// Paths, when set, resets exactly these repositories (those not
	// skipped are left alone and not counted).
	Paths []string
	// Reason, when set, resets only repositories skipped for it (e.g.
	// SkipTooManyTags after raising Config.MaxTagsCount).
	Reason string
	// PathPrefix, when set, resets only repositories under it.
	PathPrefix string
}

// resetPage is how many skipped repositories ResetSkipped reads at once.
const resetPage = 500

// ResetSkipped gives skipped repositories a new start: each goes back to
// StateDefault with its retry count at zero and its skip reason cleared,
// and is started again in its turn (its place in the queue is the time of
// the reset). It returns how many it reset. Use it after fixing what made
// them skip: a raised tag limit, a repository that exists again, an
// import that was cancelled. It does not need the lease: every change is a
// compare-and-set, and a concurrent run simply sees the repository later.
func (e *Enqueuer) ResetSkipped(ctx context.Context, opts ResetOptions) (int, error) {
	ctx = storage.UsePrimary(ctx)
	n := 0
	reset := func(r Repository) error {
		after, err := e.cfg.Store.Transition(ctx, Change{ID: r.ID, From: StateImportSkipped, Event: EventReset, At: e.cfg.Clock()})
		if errors.Is(err, ErrStateChanged) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		e.cfg.Logger.InfoContext(ctx, "enqueuer: skipped repository reset by an administrator",
			append([]any{"skip_reason", r.SkipReason}, repoAttrs(after)...)...)
		return nil
	}
	if len(opts.Paths) > 0 {
		for _, p := range opts.Paths {
			r, err := e.cfg.Store.Get(ctx, p)
			if err != nil {
				return n, err
			}
			if r.State != StateImportSkipped || (opts.Reason != "" && r.SkipReason != opts.Reason) {
				continue
			}
			if err := reset(r); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	list := ListOptions{State: StateImportSkipped, SkipReason: opts.Reason, PathPrefix: opts.PathPrefix, Order: OrderPath, Limit: resetPage}
	for {
		page, err := e.cfg.Store.List(ctx, list)
		if err != nil || len(page) == 0 {
			return n, err
		}
		for _, r := range page {
			if err := reset(r); err != nil {
				return n, err
			}
		}
		list.After = &page[len(page)-1]
	}
}

// ForceCancel ends the migration of the repository at path for good, as
// an administrator decides: an import in progress is cancelled at the
// registry first (a registry that no longer knows it is fine), then the
// repository is skipped with SkipForceCanceled, whatever its state but the
// end ones. ResetSkipped undoes it. When the registry cannot cancel, the
// repository is left as it was and the error says why.
func (e *Enqueuer) ForceCancel(ctx context.Context, path string) (Repository, error) {
	ctx = storage.UsePrimary(ctx)
	for range 5 {
		r, err := e.cfg.Store.Get(ctx, path)
		if err != nil {
			return Repository{}, err
		}
		if _, err := Next(r.State, EventSkip); err != nil {
			return r, fmt.Errorf("enqueuer: force-cancelling %s: %w", path, err)
		}
		if r.State.InProgress() {
			// Not found or not in progress: nothing runs there to cancel
			// (the pass may have just finished; its notification no
			// longer matters once the repository is skipped).
			if err := e.cfg.Registry.CancelImport(ctx, path); err != nil &&
				!errors.Is(err, ErrRegistryNotFound) && !errors.Is(err, ErrImportNotInProgress) {
				return r, fmt.Errorf("enqueuer: force-cancelling %s: %w", path, err)
			}
		}
		after, err := e.cfg.Store.Transition(ctx, Change{ID: r.ID, From: r.State, Event: EventSkip, Reason: SkipForceCanceled, At: e.cfg.Clock()})
		if errors.Is(err, ErrStateChanged) {
			continue // a notification or a run moved it; look again
		}
		if err != nil {
			return r, err
		}
		e.cfg.Logger.WarnContext(ctx, "enqueuer: repository force-cancelled by an administrator",
			append([]any{"was", string(r.State)}, repoAttrs(after)...)...)
		e.cfg.Observer.Skipped(ctx, SkipEvent{Repository: after, Reason: SkipForceCanceled})
		return after, nil
	}
	return Repository{}, fmt.Errorf("enqueuer: force-cancelling %s: %w 5 times in a row", path, ErrStateChanged)
}

// ReleaseLease frees the enqueuer's lease whoever holds it: the way out
// when a holder is stuck. It reports whether a lease was held. Config.Locker
// must implement lease.Breaker (pglease, redislease and leasetest do). A
// holder that is still alive loses the lease at its next renewal (within a
// third of Config.LeaseTTL) and stops; until then two runs may overlap,
// which the compare-and-set transitions make safe (no repository is
// started twice).
func (e *Enqueuer) ReleaseLease(ctx context.Context) (bool, error) {
	broke, err := lease.Break(ctx, e.cfg.Locker, e.cfg.LeaseKey)
	if err != nil {
		return false, fmt.Errorf("enqueuer: releasing the lease: %w", err)
	}
	e.cfg.Logger.WarnContext(ctx, "enqueuer: lease released by an administrator", "lease_key", e.cfg.LeaseKey, "was_held", broke)
	return broke, nil
}

// Reconsider clears every deferral, so that the next runs ask Config.Defer
// about those repositories again, and returns how many it cleared. Runs do
// it by themselves for deferrals made under another Config.DeferKey.
func (e *Enqueuer) Reconsider(ctx context.Context) (int, error) {
	n, err := e.cfg.Store.Reconsider(storage.UsePrimary(ctx), "")
	if err != nil {
		return n, fmt.Errorf("enqueuer: reconsidering deferred repositories: %w", err)
	}
	e.cfg.Logger.InfoContext(ctx, "enqueuer: deferred repositories reconsidered by an administrator", "reconsidered", n)
	return n, nil
}
