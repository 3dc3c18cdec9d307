package enqueuer

import (
	"context"
	"errors"
)

// ReconcileOutcome is what reconciliation did with an aborted repository
// before its retry. There are no others, so they are safe as metric label
// values.
type ReconcileOutcome string

// The outcomes of reconciliation.
const (
	// ReconcileRetried: the registry has no running or finished import
	// (failed, cancelled, unknown, or it could not say): the repository is
	// retried from the pre-import.
	ReconcileRetried ReconcileOutcome = "retried"
	// ReconcileResumed: the registry still runs a pass; the repository
	// goes back to it (pre_importing or importing) and waits for its
	// notification, holding one unit of capacity.
	ReconcileResumed ReconcileOutcome = "resumed"
	// ReconcileFinished: the registry finished a pass after all (its
	// notification was lost): the repository moves on to pre_import_done
	// or import_done.
	ReconcileFinished ReconcileOutcome = "finished"
	// ReconcileSkipped: the registry does not know the repository (404)
	// or serves it natively already: it is skipped.
	ReconcileSkipped ReconcileOutcome = "skipped"
)

// reconcile asks the registry where an aborted repository's import stands
// before it is retried, as c claims it: a pass that finished or still runs
// is taken as it is instead of being started again. It reports false when
// the retry should go ahead (start a pre-import).
func (r *Runner) reconcile(ctx context.Context, c claim) (startResult, bool) {
	cfg := r.e.cfg
	st, err := cfg.Registry.ImportStatus(ctx, c.after.Path)
	var (
		ev      Event
		outcome = ReconcileRetried
		skip    string
	)
	switch {
	case errors.Is(err, ErrRegistryNotFound):
		outcome, skip = ReconcileSkipped, SkipNotFound
	case err != nil:
		// Unknown: retry from the pre-import. If the registry cannot be
		// reached, the start says so and the claim is reverted.
	case st.Status == StatusNative:
		outcome, skip = ReconcileSkipped, SkipNative
	case st.Status == StatusPreImportInProgress:
		outcome, ev = ReconcileResumed, EventResumePreImport
	case st.Status == StatusImportInProgress:
		outcome, ev = ReconcileResumed, EventResumeImport
	case st.Status == StatusPreImportComplete:
		outcome, ev = ReconcileFinished, EventFinishPreImport
	case st.Status == StatusImportComplete:
		outcome, ev = ReconcileFinished, EventFinishImport
	}
	cfg.Observer.Reconciled(ctx, ReconcileEvent{Repository: c.before, Status: st.Status, Outcome: outcome, Err: err})
	switch {
	case outcome == ReconcileRetried:
		return 0, false
	case skip != "":
		return r.settleSkip(ctx, c, skip), true
	}
	after, ok := r.settle(ctx, c, ev, "")
	if !ok {
		return resultLost, true
	}
	cfg.Logger.InfoContext(ctx, "enqueuer: aborted import reconciled with the registry",
		append([]any{"import_type", string(c.typ), "registry_status", string(st.Status), "outcome", string(outcome)}, repoAttrs(after)...)...)
	r.record(func(rep *Report) {
		rep.Reconciled = append(rep.Reconciled, Outcome{Repository: after, ImportType: c.typ, Reason: string(st.Status)})
	})
	return resultReconciled, true
}
