package enqueuer

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// staleConcurrency caps the registry calls of the stale guard in flight.
const staleConcurrency = 8

// guardStale deals with repositories that have been pre-importing longer
// than Config.PreImportTimeout or importing longer than
// Config.ImportTimeout. The registry is asked first: an import it reports
// complete moves on (its notification was lost); one still running is
// cancelled; then the repository is aborted, to be retried. When the
// registry cannot be asked, the repository is left for the next run.
func (r *Runner) guardStale(ctx context.Context) error {
	cfg := r.e.cfg
	now := r.Now()
	var stale []Repository
	for _, s := range []State{StatePreImporting, StateImporting} {
		timeout := cfg.PreImportTimeout
		if s == StateImporting {
			timeout = cfg.ImportTimeout
		}
		rs, err := cfg.Store.List(ctx, ListOptions{State: s, ChangedBefore: now.Add(-timeout), Limit: cfg.StaleBatch})
		if err != nil {
			return err
		}
		stale = append(stale, rs...)
	}
	var g errgroup.Group
	g.SetLimit(staleConcurrency)
	for _, repo := range stale {
		g.Go(func() error {
			r.settleStale(ctx, repo)
			return nil
		})
	}
	_ = g.Wait() // settleStale logs its own failures
	return ctx.Err()
}

func (r *Runner) settleStale(ctx context.Context, repo Repository) {
	cfg := r.e.cfg
	log := func(msg string, extra ...any) {
		cfg.Logger.WarnContext(ctx, msg, append(extra, repoAttrs(repo)...)...)
	}
	status, err := cfg.Registry.ImportStatus(ctx, repo.Path)
	if errors.Is(err, ErrRegistryNotFound) {
		status, err = ImportStatus{Status: StatusUnknown}, nil
	}
	if err != nil {
		log("enqueuer: stale import: registry status unavailable; will try again next run", "error", err)
		return
	}
	var finish Event
	switch {
	case repo.State == StatePreImporting && status.Status == StatusPreImportComplete:
		finish = EventFinishPreImport
	case repo.State == StateImporting && status.Status == StatusImportComplete:
		finish = EventFinishImport
	}
	if finish != "" {
		after, err := cfg.Store.Transition(ctx, Change{ID: repo.ID, From: repo.State, Event: finish, At: r.Now()})
		if err != nil {
			log("enqueuer: stale import: could not record the registry's completion", "error", err)
			return
		}
		cfg.Logger.InfoContext(ctx, "enqueuer: stale import was complete at the registry",
			append([]any{"registry_status", string(status.Status)}, repoAttrs(after)...)...)
		r.record(func(rep *Report) { rep.Finished = append(rep.Finished, Outcome{Repository: after}) })
		return
	}
	if status.InProgress() {
		if err := cfg.Registry.CancelImport(ctx, repo.Path); err != nil && !errors.Is(err, ErrRegistryNotFound) {
			log("enqueuer: stale import: cancel failed; will try again next run", "error", err)
			return
		}
	}
	timeout := cfg.PreImportTimeout
	if repo.State == StateImporting {
		timeout = cfg.ImportTimeout
	}
	reason := fmt.Sprintf("stale: %s for more than %s (registry status %q)", repo.State, timeout, status.Status)
	r.abort(ctx, repo, "", reason, true)
}
