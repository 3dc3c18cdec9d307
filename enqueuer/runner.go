package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/clip"
)

// Skip reasons the enqueuer records itself. They are the only ones: a
// filter that rules a repository out for now defers it (Config.Defer)
// instead of skipping it.
const (
	// SkipTooManyTags: more tags than Config.MaxTagsCount.
	SkipTooManyTags = "too_many_tags"
	// SkipTooManyRetries: aborted Config.MaxRetries times already.
	SkipTooManyRetries = "too_many_retries"
	// SkipNative: the registry serves it from its new store already.
	SkipNative = "native_import"
	// SkipNotFound: the registry does not know the repository (HTTP 404).
	SkipNotFound = "not_found"
	// SkipCanceled: the stale guard cancelled an import that ran past its
	// timeout, and the repository was near its retry limit.
	SkipCanceled = "migration_canceled"
	// SkipForceCanceled: an administrator cancelled it (ForceCancel).
	SkipForceCanceled = "migration_forced_canceled"
)

// SkipReasons lists every skip reason the enqueuer records.
var SkipReasons = []string{SkipTooManyTags, SkipTooManyRetries, SkipNative, SkipNotFound, SkipCanceled, SkipForceCanceled}

// finalBatch caps the final imports one round starts.
const finalBatch = 100

// maxReasonLen bounds a stored abort reason (an error message).
const maxReasonLen = 1024

// Runner is what a Strategy drives during one Run, under the lease. Its
// methods are safe for concurrent use.
type Runner struct {
	e        *Enqueuer
	begin    time.Time
	deferKey string

	mu     sync.Mutex
	report *Report
	aborts int // starts aborted in this run
}

// Progress is what one Runner.Start round did.
type Progress struct {
	// Free is the free capacity when the round began.
	Free int
	// Started counts new pre-imports (import types next and retry) the
	// registry accepted; each took one unit of Free.
	Started int
	// Finals counts final imports started; they hold capacity already.
	Finals int
	// Skipped counts repositories skipped while looking for candidates or
	// because of the registry's answer.
	Skipped int
	// Deferred counts repositories a filter (Config.Defer) ruled out for
	// now.
	Deferred int
	// Reconciled counts aborted repositories that the registry's status
	// moved on without a new start (finished, or still running).
	Reconciled int
	// Aborted counts starts the registry refused because of the
	// repository.
	Aborted int
	// Exhausted means fewer candidates were found than could have been
	// started: there is nothing left to start for now.
	Exhausted bool
	// Throttled means the minimum wait between starts
	// (Config.MinStartInterval) held back new starts.
	Throttled bool
}

// Now returns the current time by Config.Clock.
func (r *Runner) Now() time.Time { return r.e.cfg.Clock() }

// Began returns when the run began, by Config.Clock.
func (r *Runner) Began() time.Time { return r.begin }

// Enabled asks the feature flag (Config.Enabled).
func (r *Runner) Enabled(ctx context.Context) bool { return r.e.cfg.Enabled(ctx) }

// Stop records why the strategy ended the run, unless a reason is already
// recorded.
func (r *Runner) Stop(reason StopReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report.Stopped == "" {
		r.report.Stopped = reason
	}
}

// Free returns the capacity minus the imports in progress, at least 0.
func (r *Runner) Free(ctx context.Context) (int, error) {
	inProgress, err := r.e.cfg.Store.CountInProgress(ctx)
	if err != nil {
		return 0, err
	}
	capacity := r.e.cfg.Capacity(ctx)
	r.e.cfg.Observer.CapacityChecked(ctx, CapacityEvent{InProgress: inProgress, Capacity: capacity})
	return max(capacity-inProgress, 0), nil
}

// claim is a transition made before the registry was asked: it is kept
// when the registry accepts and reverted when the registry refuses for
// reasons of its own.
type claim struct {
	before, after Repository
	typ           ImportType
}

// Start runs one round. It claims, in this order, every pre-imported
// repository for its final import, aborted repositories for a retry and
// new repositories, at most min(n, free capacity) of the last two kinds,
// in Config.Order, skipping those that Config rules out and deferring
// those that Config.Defer holds back. Then it asks the registry to start
// them all, at most max(n, 1) at a time, and waits for every answer. An
// aborted repository is reconciled first: the registry's status may show
// that it finished or still runs (see Config). A repository is claimed by
// a compare-and-set transition before the registry is asked, so it is
// never started twice; when the registry is full (ErrTooManyImports) or
// cannot be reached (ErrRegistryUnavailable) the claims it did not accept
// are reverted and Start returns that error, which the strategy should
// return to end the run. Other refusals abort the repository (or skip it:
// HTTP 404, already native) and the round goes on. Repositories aborted
// during this run are not retried in it.
func (r *Runner) Start(ctx context.Context, n int) (Progress, error) {
	var p Progress
	claims, err := r.claimRound(ctx, n, finalBatch, &p)
	if err != nil || len(claims) == 0 {
		return p, err
	}
	var (
		mu      sync.Mutex
		stopErr error
	)
	stopping := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stopErr != nil
	}
	var g errgroup.Group
	g.SetLimit(max(1, min(n, len(claims))))
	for _, c := range claims {
		g.Go(func() error {
			if stopping() {
				r.revert(ctx, c, "run stopping")
				return nil
			}
			res, err := r.startOne(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			if res.count(&p, c.typ) && stopErr == nil {
				stopErr = err
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines report through stopErr
	if stopErr != nil {
		return p, stopErr
	}
	if err := r.checkAborts(); err != nil {
		return p, err
	}
	return p, ctx.Err()
}

// claimRound claims up to maxFinals final imports and up to min(fresh,
// free capacity) new and retried pre-imports, recording the counts in p.
// On error every claim is reverted.
func (r *Runner) claimRound(ctx context.Context, fresh, maxFinals int, p *Progress) ([]claim, error) {
	var claims []claim
	if maxFinals > 0 {
		var err error
		if claims, err = r.claimFinals(ctx, maxFinals); err != nil {
			r.revertAll(ctx, claims)
			return nil, err
		}
	}
	var err error
	if p.Free, err = r.Free(ctx); err != nil {
		r.revertAll(ctx, claims)
		return nil, err
	}
	want := min(fresh, p.Free)
	if want > 0 {
		if want, p.Throttled, err = r.throttle(ctx, want); err != nil {
			r.revertAll(ctx, claims)
			return nil, err
		}
	}
	if want > 0 {
		more, err := r.claimFresh(ctx, want, p)
		claims = append(claims, more...)
		if err != nil {
			r.revertAll(ctx, claims)
			return nil, err
		}
		p.Exhausted = len(more) < want
	}
	return claims, nil
}

// throttle applies Config.MinStartInterval: no new start until that long
// after the latest one, and then one at a time.
func (r *Runner) throttle(ctx context.Context, want int) (int, bool, error) {
	wait := r.e.cfg.MinStartInterval
	if wait <= 0 {
		return want, false, nil
	}
	last, err := r.e.cfg.Store.LastStarted(ctx)
	if err != nil {
		return 0, false, err
	}
	if !last.IsZero() && r.Now().Before(last.Add(wait)) {
		return 0, true, nil
	}
	return 1, want > 1, nil
}

// claimFinals claims up to limit pre-imported repositories for their final
// import.
func (r *Runner) claimFinals(ctx context.Context, limit int) ([]claim, error) {
	done, err := r.e.cfg.Store.List(ctx, ListOptions{State: StatePreImportDone, Limit: limit})
	if err != nil {
		return nil, err
	}
	var claims []claim
	for _, cand := range done {
		after, err := r.e.cfg.Store.Transition(ctx, Change{ID: cand.ID, From: cand.State, Event: EventStartImport, At: r.Now()})
		if errors.Is(err, ErrStateChanged) {
			continue
		}
		if err != nil {
			return claims, err
		}
		claims = append(claims, claim{before: cand, after: after, typ: ImportFinal})
	}
	return claims, nil
}

// claimFresh claims up to want repositories: aborted ones first (retry),
// then new ones (next), in Config.Order, skipping those ruled out and
// deferring those a filter holds back.
func (r *Runner) claimFresh(ctx context.Context, want int, p *Progress) (claims []claim, err error) {
	phases := []struct {
		state State
		event Event
		typ   ImportType
		// before keeps repositories aborted during this run out.
		before time.Time
	}{
		{StateImportAborted, EventRetry, ImportRetry, r.begin},
		{StateDefault, EventStartPreImport, ImportNext, time.Time{}},
	}
	for _, ph := range phases {
		// Each page holds only repositories still in ph.state and not
		// deferred; handled ones left it, so the next page shows new
		// ones. The bound guards against a competitor that keeps
		// reverting.
		for range 1000 {
			if len(claims) >= want {
				return claims, nil
			}
			limit := want - len(claims) + 10
			page, err := r.e.cfg.Store.List(ctx, ListOptions{State: ph.state, Order: r.e.cfg.Order, Ready: true, ChangedBefore: ph.before, Limit: limit})
			if err != nil {
				return claims, err
			}
			for _, cand := range page {
				if len(claims) >= want {
					break
				}
				if reason := r.skipReason(cand, ph.typ); reason != "" {
					ok, err := r.skip(ctx, cand, ph.typ, reason)
					if err != nil {
						return claims, err
					}
					if ok {
						p.Skipped++
					}
					continue
				}
				if reason := r.deferReason(ctx, cand); reason != "" {
					ok, err := r.deferRepository(ctx, cand, ph.typ, reason)
					if err != nil {
						return claims, err
					}
					if ok {
						p.Deferred++
					}
					continue
				}
				after, err := r.e.cfg.Store.Transition(ctx, Change{ID: cand.ID, From: cand.State, Event: ph.event, At: r.Now()})
				if errors.Is(err, ErrStateChanged) {
					continue
				}
				if err != nil {
					return claims, err
				}
				claims = append(claims, claim{before: cand, after: after, typ: ph.typ})
			}
			if len(page) < limit {
				break
			}
		}
	}
	return claims, nil
}

// skipReason is the reason to skip cand for good, or "".
func (r *Runner) skipReason(cand Repository, typ ImportType) string {
	cfg := r.e.cfg
	switch {
	case typ == ImportRetry && cand.RetryCount >= cfg.MaxRetries:
		return SkipTooManyRetries
	case cfg.MaxTagsCount > 0 && cand.TagCount > cfg.MaxTagsCount:
		return SkipTooManyTags
	}
	return ""
}

// deferReason asks Config.Defer about cand.
func (r *Runner) deferReason(ctx context.Context, cand Repository) string {
	if r.e.cfg.Defer == nil {
		return ""
	}
	return r.e.cfg.Defer(ctx, cand)
}

// skip moves cand to StateImportSkipped; false means another caller
// changed it first.
func (r *Runner) skip(ctx context.Context, cand Repository, typ ImportType, reason string) (bool, error) {
	after, err := r.e.cfg.Store.Transition(ctx, Change{ID: cand.ID, From: cand.State, Event: EventSkip, Reason: reason, At: r.Now()})
	if errors.Is(err, ErrStateChanged) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.e.cfg.Logger.InfoContext(ctx, "enqueuer: repository skipped",
		append([]any{"import_type", string(typ), "reason", reason}, repoAttrs(after)...)...)
	r.e.cfg.Observer.Skipped(ctx, SkipEvent{Repository: after, ImportType: typ, Reason: reason})
	r.record(func(rep *Report) {
		rep.Skipped = append(rep.Skipped, Outcome{Repository: after, ImportType: typ, Reason: reason})
	})
	return true, nil
}

// deferRepository defers cand under the run's filter key; false means
// another caller changed it first.
func (r *Runner) deferRepository(ctx context.Context, cand Repository, typ ImportType, reason string) (bool, error) {
	after, err := r.e.cfg.Store.Defer(ctx, Deferral{ID: cand.ID, From: cand.State, Reason: reason, Key: r.deferKey, At: r.Now()})
	if errors.Is(err, ErrStateChanged) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.e.cfg.Logger.DebugContext(ctx, "enqueuer: repository deferred",
		append([]any{"import_type", string(typ), "reason", reason, "defer_key", r.deferKey}, repoAttrs(after)...)...)
	r.record(func(rep *Report) { rep.Deferred++ })
	return true, nil
}

type startResult int

const (
	resultStarted startResult = iota
	resultSkipped
	resultReconciled
	resultAborted
	resultStop
	resultLost // the claim could not be settled; logged
)

// count adds res of a start of type typ to p and reports whether it stops
// the round.
func (res startResult) count(p *Progress, typ ImportType) (stop bool) {
	switch res {
	case resultStarted:
		if typ == ImportFinal {
			p.Finals++
		} else {
			p.Started++
		}
	case resultSkipped:
		p.Skipped++
	case resultReconciled:
		p.Reconciled++
	case resultAborted:
		p.Aborted++
	case resultStop:
		return true
	}
	return false
}

// startOne asks the registry to start c and settles the claim. A retry is
// reconciled with the registry's status first.
func (r *Runner) startOne(ctx context.Context, c claim) (startResult, error) {
	if c.typ == ImportRetry {
		if res, done := r.reconcile(ctx, c); done {
			return res, nil
		}
	}
	var err error
	asked := time.Now()
	sctx := r.e.cfg.Observer.StartImportStart(ctx, StartImportStartEvent{Repository: c.after, ImportType: c.typ})
	if c.typ == ImportFinal {
		err = r.e.cfg.Registry.StartImport(sctx, c.after.Path)
	} else {
		err = r.e.cfg.Registry.StartPreImport(sctx, c.after.Path)
	}
	ev := StartEvent{Repository: c.after, ImportType: c.typ, Duration: time.Since(asked), Err: err}
	ev.Result = startResultOf(ctx, err, c.typ)
	r.e.cfg.Observer.StartImportEnd(sctx, ev)
	switch {
	case err == nil:
		r.e.cfg.Logger.InfoContext(ctx, "enqueuer: import started",
			append([]any{"import_type", string(c.typ)}, repoAttrs(c.after)...)...)
		r.record(func(rep *Report) {
			rep.Started = append(rep.Started, Outcome{Repository: c.after, ImportType: c.typ})
		})
		return resultStarted, nil
	case errors.Is(err, ErrTooManyImports), errors.Is(err, ErrTooEarly), errors.Is(err, ErrRegistryUnavailable), ctx.Err() != nil:
		// Not the repository's fault: it goes back to where it was.
		r.e.cfg.Logger.InfoContext(ctx, "enqueuer: registry refused the start; stopping this run",
			append([]any{"import_type", string(c.typ), "error", err}, repoAttrs(c.before)...)...)
		r.revert(ctx, c, "registry refused")
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (registry: %w)", ctx.Err(), err)
		}
		return resultStop, err
	case errors.Is(err, ErrNative) && c.typ != ImportFinal:
		return r.settleSkip(ctx, c, SkipNative), nil
	case errors.Is(err, ErrRegistryNotFound):
		// The registry has no such repository: retrying cannot help.
		return r.settleSkip(ctx, c, SkipNotFound), nil
	default:
		if r.abort(context.WithoutCancel(ctx), c.after, c.typ, err.Error(), abortRefused) {
			r.mu.Lock()
			r.aborts++
			r.mu.Unlock()
			return resultAborted, nil
		}
		return resultLost, err
	}
}

// settleSkip turns claim c into a skip with reason.
func (r *Runner) settleSkip(ctx context.Context, c claim, reason string) startResult {
	after, ok := r.settle(ctx, c, EventSkip, reason)
	if !ok {
		return resultLost
	}
	r.e.cfg.Logger.InfoContext(ctx, "enqueuer: repository skipped",
		append([]any{"import_type", string(c.typ), "reason", reason}, repoAttrs(after)...)...)
	r.e.cfg.Observer.Skipped(ctx, SkipEvent{Repository: after, ImportType: c.typ, Reason: reason})
	r.record(func(rep *Report) {
		rep.Skipped = append(rep.Skipped, Outcome{Repository: after, ImportType: c.typ, Reason: reason})
	})
	return resultSkipped
}

// settle replaces claim c, in one compare-and-set, by what ev would have
// made of the repository before the claim: as if the claim had been
// reverted and ev applied, with no moment in between when the repository
// could be claimed again.
func (r *Runner) settle(ctx context.Context, c claim, ev Event, reason string) (Repository, bool) {
	ctx = context.WithoutCancel(ctx)
	desired, err := c.before.Apply(Change{ID: c.before.ID, From: c.before.State, Event: ev, Reason: reason}, r.Now())
	if err == nil {
		desired, err = r.e.cfg.Store.Revert(ctx, c.after, desired)
	}
	if err != nil {
		r.e.cfg.Logger.ErrorContext(ctx, "enqueuer: could not settle a claim; the stale guard will look at it",
			append([]any{"import_type", string(c.typ), "event", string(ev), "error", err}, repoAttrs(c.after)...)...)
		return Repository{}, false
	}
	return desired, true
}

// startResultOf classifies a registry's answer to a start the way
// startOne acts on it.
func startResultOf(ctx context.Context, err error, typ ImportType) StartResult {
	switch {
	case err == nil:
		return StartAccepted
	case errors.Is(err, ErrTooManyImports):
		return StartTooManyImports
	case errors.Is(err, ErrTooEarly):
		return StartTooEarly
	case errors.Is(err, ErrRegistryUnavailable):
		return StartUnavailable
	case ctx.Err() != nil:
		return StartCancelled
	case errors.Is(err, ErrNative) && typ != ImportFinal:
		return StartNative
	case errors.Is(err, ErrRegistryNotFound):
		return StartNotFound
	}
	return StartRefused
}

// abortCause says who aborts a repository.
type abortCause int

const (
	abortRefused  abortCause = iota // the registry refused the start
	abortStale                      // the stale guard found it not running
	abortCanceled                   // the stale guard cancelled it at the registry
)

// abortCanceled aborts a repository whose import the stale guard cancelled.
func (r *Runner) abortCanceled(ctx context.Context, cur Repository, reason string) bool {
	return r.abort(ctx, cur, "", reason, abortCanceled)
}

// abort moves a repository in progress to StateImportAborted.
func (r *Runner) abort(ctx context.Context, cur Repository, typ ImportType, reason string, cause abortCause) bool {
	reason = truncateReason(reason)
	after, err := r.e.cfg.Store.Transition(ctx, Change{ID: cur.ID, From: cur.State, Event: EventAbort, Reason: reason, At: r.Now()})
	if err != nil {
		r.e.cfg.Logger.ErrorContext(ctx, "enqueuer: could not abort a repository",
			append([]any{"import_type", string(typ), "reason", reason, "error", err}, repoAttrs(cur)...)...)
		return false
	}
	r.e.cfg.Logger.WarnContext(ctx, "enqueuer: import aborted",
		append([]any{"import_type", string(typ), "reason", reason}, repoAttrs(after)...)...)
	r.e.cfg.Observer.Aborted(ctx, AbortEvent{Repository: after, ImportType: typ, Reason: reason,
		Stale: cause != abortRefused, Canceled: cause == abortCanceled})
	r.record(func(rep *Report) {
		rep.Aborted = append(rep.Aborted, Outcome{Repository: after, ImportType: typ, Reason: reason})
	})
	return true
}

// truncateReason bounds a stored reason to maxReasonLen bytes, on a rune
// boundary (Postgres rejects a split character).
func truncateReason(reason string) string { return clip.Prefix(reason, maxReasonLen) }

// revert undoes a claim the registry did not act on. It runs even when ctx
// is done: a claim left behind would hold capacity until the stale guard
// finds it.
func (r *Runner) revert(ctx context.Context, c claim, why string) bool {
	_, err := r.e.cfg.Store.Revert(context.WithoutCancel(ctx), c.after, c.before)
	if err != nil {
		r.e.cfg.Logger.ErrorContext(ctx, "enqueuer: could not revert a claim; the stale guard will abort it",
			append([]any{"import_type", string(c.typ), "why", why, "error", err}, repoAttrs(c.after)...)...)
		return false
	}
	return true
}

func (r *Runner) revertAll(ctx context.Context, claims []claim) {
	for _, c := range claims {
		r.revert(ctx, c, "round failed")
	}
}

// checkAborts ends a run that keeps aborting repositories: the registry is
// likely refusing everything, and going on would burn retries.
func (r *Runner) checkAborts() error {
	limit := r.e.cfg.MaxAbortsPerRun
	if limit <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborts >= limit {
		return fmt.Errorf("%w: %d starts aborted in this run", ErrTooManyAborts, r.aborts)
	}
	return nil
}

func (r *Runner) record(f func(*Report)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.report)
}

// unlimited is the n of a round bounded only by the free capacity.
const unlimited = math.MaxInt
