package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// staleConcurrency caps the registry calls of the stale guard in flight.
const staleConcurrency = 8

// guardStale looks at a bounded window of imports that have been in their
// pass longer than Config.StaleAfter: the Config.StaleBatch oldest. For
// each it asks the registry (see settleStale). It runs at most once per
// Config.StaleCheckInterval in this process.
func (r *Runner) guardStale(ctx context.Context) error {
	cfg := r.e.cfg
	now := r.Now()
	if !r.e.staleDue(now) {
		return nil
	}
	limit := cfg.StaleBatch
	if limit <= 0 {
		limit = max(2*cfg.Capacity(ctx), 10)
	}
	var stale []Repository
	for _, s := range []State{StatePreImporting, StateImporting} {
		rs, err := cfg.Store.List(ctx, ListOptions{State: s, ChangedBefore: now.Add(-cfg.StaleAfter), Limit: limit})
		if err != nil {
			return err
		}
		stale = append(stale, rs...)
	}
	slices.SortFunc(stale, ListOptions{}.Compare)
	stale = stale[:min(len(stale), limit)]
	var g errgroup.Group
	g.SetLimit(staleConcurrency)
	for _, repo := range stale {
		g.Go(func() error {
			r.settleStale(ctx, repo, now)
			return nil
		})
	}
	_ = g.Wait() // settleStale logs its own failures
	return ctx.Err()
}

// timeout is how long repo may stay in its pass (Config.PreImportTimeout
// or Config.ImportTimeout).
func (e *Enqueuer) timeout(s State) time.Duration {
	if s == StateImporting {
		return e.cfg.ImportTimeout
	}
	return e.cfg.PreImportTimeout
}

// settleStale asks the registry about an import that has been in its pass
// a while:
//   - finished (a lost notification): the repository moves on;
//   - still running, within its timeout: nothing is done;
//   - still running past its timeout: it is cancelled at the registry and
//     aborted, or skipped as SkipCanceled when its retries are nearly used
//     up, so that a repository that never finishes is not retried blindly;
//   - unknown to the registry (404): skipped as SkipNotFound;
//   - native: skipped as SkipNative;
//   - anything else (failed, cancelled, not started, the other pass): it
//     is aborted, and reconciled again before its retry.
//
// When the registry cannot be asked, the repository is left for a later
// run.
func (r *Runner) settleStale(ctx context.Context, repo Repository, now time.Time) {
	cfg := r.e.cfg
	warn := func(msg string, extra ...any) {
		cfg.Logger.WarnContext(ctx, msg, append(extra, repoAttrs(repo)...)...)
	}
	status, err := cfg.Registry.ImportStatus(ctx, repo.Path)
	switch {
	case errors.Is(err, ErrRegistryNotFound):
		r.staleSkip(ctx, repo, SkipNotFound)
		return
	case err != nil:
		warn("enqueuer: stale import: registry status unavailable; will try again later", "error", err)
		return
	}
	var finish Event
	switch {
	case repo.State == StatePreImporting && status.Status == StatusPreImportComplete:
		finish = EventFinishPreImport
	case repo.State == StateImporting && status.Status == StatusImportComplete:
		finish = EventFinishImport
	case status.Status == StatusNative:
		r.staleSkip(ctx, repo, SkipNative)
		return
	}
	if finish != "" {
		after, err := cfg.Store.Transition(ctx, Change{ID: repo.ID, From: repo.State, Event: finish, At: r.Now()})
		if err != nil {
			warn("enqueuer: stale import: could not record the registry's completion", "error", err)
			return
		}
		cfg.Logger.InfoContext(ctx, "enqueuer: stale import was complete at the registry",
			append([]any{"registry_status", string(status.Status)}, repoAttrs(after)...)...)
		r.record(func(rep *Report) { rep.Finished = append(rep.Finished, Outcome{Repository: after}) })
		return
	}
	timeout := r.e.timeout(repo.State)
	if !registryRuns(repo.State, status.Status) {
		r.abort(ctx, repo, "", fmt.Sprintf("stale: %s for more than %s, registry status %q", repo.State, cfg.StaleAfter, status.Status), abortStale)
		return
	}
	if now.Sub(repo.StateChangedAt) < timeout {
		return // still within its time
	}
	if err := cfg.Registry.CancelImport(ctx, repo.Path); err != nil && !errors.Is(err, ErrRegistryNotFound) {
		warn("enqueuer: stale import: cancel failed; will try again later", "error", err)
		return
	}
	reason := fmt.Sprintf("canceled: %s for more than %s (registry status %q)", repo.State, timeout, status.Status)
	if repo.RetryCount >= cfg.MaxRetries-1 {
		r.staleSkip(ctx, repo, SkipCanceled)
		return
	}
	r.abortCanceled(ctx, repo, reason)
}

// staleSkip skips a repository the stale guard found done with.
func (r *Runner) staleSkip(ctx context.Context, repo Repository, reason string) {
	if _, err := r.skip(ctx, repo, "", reason); err != nil {
		r.e.cfg.Logger.WarnContext(ctx, "enqueuer: stale import: could not skip the repository",
			append([]any{"reason", reason, "error", err}, repoAttrs(repo)...)...)
	}
}
