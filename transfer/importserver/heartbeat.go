package importserver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// pruneEvery is how often delivered notifications past the retention are
// deleted.
const pruneEvery = time.Hour

// pruneTimeout bounds one pruning of the outbox.
const pruneTimeout = 5 * time.Minute

// bounded calls f with ctx limited to d.
func bounded(ctx context.Context, d time.Duration, f func(context.Context)) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	f(ctx)
}

// heartbeatLoop keeps this process's imports alive in the store, stops
// those that were canceled or ended elsewhere, ends other instances'
// stale imports, and reports the outbox's state.
func (s *Server) heartbeatLoop(ctx context.Context) {
	beat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer beat.Stop()
	stats := time.NewTicker(s.cfg.Notify.StatsInterval)
	defer stats.Stop()
	bounded(ctx, s.cfg.Notify.StatsInterval, s.checkOutbox)
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			// Each store call is bounded: a call hanging on a dead
			// connection must not hold up the heartbeats after it, nor the
			// sweep that ends dead instances' imports.
			bounded(ctx, s.cfg.HeartbeatInterval, s.beat)
			bounded(ctx, s.cfg.HeartbeatInterval, s.sweep)
		case <-stats.C:
			bounded(ctx, s.cfg.Notify.StatsInterval, s.checkOutbox)
			if s.cfg.Notify.Retention > 0 && time.Since(pruned) >= pruneEvery {
				pruned = time.Now()
				bounded(ctx, pruneTimeout, s.prune)
			}
		}
	}
}

// beat records the heartbeat of every run of this process and acts on
// what the store says about them.
func (s *Server) beat(ctx context.Context) {
	s.mu.Lock()
	runs := make(map[RunRef]*activeRun, len(s.runs))
	for _, r := range s.runs {
		runs[r.ref] = r
	}
	s.mu.Unlock()
	if len(runs) == 0 {
		return
	}
	refs := slices.Collect(maps.Keys(runs))
	alive, err := s.cfg.Store.Heartbeat(ctx, s.cfg.Instance, refs)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "importserver: heartbeat failed", "imports", len(refs), "error", err)
		}
		return
	}
	// Runs are stopped by identity, not by number: an abandoned first run
	// frees its number for the next start of the repository. What is
	// left in runs the store no longer holds.
	for _, imp := range alive {
		r := runs[imp.Ref()]
		delete(runs, imp.Ref())
		if imp.CancelRequested && r != nil && s.stopActive(r, stopRequested) {
			s.log.InfoContext(ctx, "importserver: cancellation requested", "repository", imp.Path, "run", imp.Run)
		}
	}
	for ref, r := range runs {
		if s.stopActive(r, stopLost) {
			s.log.WarnContext(ctx, "importserver: import was ended elsewhere; stopping it", "repository", ref.Path, "run", ref.Run)
		}
	}
}

// sweep ends the imports of any instance that stopped sending heartbeats.
func (s *Server) sweep(ctx context.Context) {
	ended, err := s.cfg.Store.FailStale(ctx, StaleRequest{StaleAfter: s.cfg.StaleAfter,
		Detail: fmt.Sprintf("interrupted: no heartbeat from its registry instance for more than %s", s.cfg.StaleAfter)})
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "importserver: looking for stale imports failed", "error", err)
		}
		return
	}
	s.reportStale(ctx, ended)
}

func (s *Server) checkOutbox(ctx context.Context) {
	st, err := s.cfg.Store.OutboxStats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "importserver: reading the outbox's state failed", "error", err)
		}
		return
	}
	s.obs.OutboxChecked(ctx, st)
}

func (s *Server) prune(ctx context.Context) {
	n, err := s.cfg.Store.PruneDelivered(ctx, s.cfg.Notify.Retention)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.WarnContext(ctx, "importserver: pruning delivered notifications failed", "error", err)
	case n > 0:
		s.log.InfoContext(ctx, "importserver: pruned delivered notifications", "deleted", n, "older_than", s.cfg.Notify.Retention)
	}
}
