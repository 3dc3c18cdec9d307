package enqueuer

import "time"

// ImportType says why a repository was started; it is logged with every
// start as import_type.
type ImportType string

// The import types.
const (
	// ImportNext is a first pre-import of a repository in StateDefault.
	ImportNext ImportType = "next"
	// ImportRetry is a new pre-import of an aborted repository.
	ImportRetry ImportType = "retry"
	// ImportFinal is the final import of a pre-imported repository.
	ImportFinal ImportType = "final"
)

// StopReason says why a run ended.
type StopReason string

// The reasons a run ends.
const (
	StopCapacityFull        StopReason = "capacity_full"
	StopNothingLeft         StopReason = "nothing_left"
	StopDeadline            StopReason = "deadline"
	StopDisabled            StopReason = "disabled"
	StopOnce                StopReason = "once"
	StopTooManyImports      StopReason = "too_many_imports"
	StopTooEarly            StopReason = "too_early"
	StopRegistryUnavailable StopReason = "registry_unavailable"
	StopTooManyAborts       StopReason = "too_many_aborts"
	StopThrottled           StopReason = "throttled"
	StopLeaseHeld           StopReason = "lease_held"
	StopError               StopReason = "error"
)

// Outcome is one change a run made to a repository.
type Outcome struct {
	// Repository is the repository after the change.
	Repository Repository
	// ImportType is set for starts.
	ImportType ImportType
	// Reason is the skip or abort reason.
	Reason string
}

// Report is what one Run did.
type Report struct {
	// Started are the imports the registry accepted, in that order.
	Started []Outcome
	// Skipped are repositories moved to StateImportSkipped.
	Skipped []Outcome
	// Aborted are repositories moved to StateImportAborted: starts the
	// registry refused because of the repository, and stale imports.
	Aborted []Outcome
	// Finished are stale repositories whose import the registry reported
	// complete (a lost notification), moved on accordingly.
	Finished []Outcome
	// Reconciled are aborted repositories that the registry's status moved
	// on without a new start (Outcome.Reason is the registry's status).
	Reconciled []Outcome
	// Deferred counts repositories that Config.Defer ruled out for now.
	Deferred int
	// Stopped is why the run ended.
	Stopped StopReason
	// Duration is how long Run took.
	Duration time.Duration
}

// Count returns how many starts of import type t the report holds.
func (r Report) Count(t ImportType) int {
	n := 0
	for _, o := range r.Started {
		if o.ImportType == t {
			n++
		}
	}
	return n
}
