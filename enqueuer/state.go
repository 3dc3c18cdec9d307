package enqueuer

import (
	"fmt"
)

// State is where a repository is in its migration.
type State string

// The migration states. A repository starts in StateDefault and ends in
// StateImportDone or StateImportSkipped; StateImportAborted is left again
// by a retry (or by reconciliation with the registry), and an
// administrator's reset takes a skipped repository back to StateDefault.
const (
	StateDefault       State = "default"
	StatePreImporting  State = "pre_importing"
	StatePreImportDone State = "pre_import_done"
	StateImporting     State = "importing"
	StateImportDone    State = "import_done"
	StateImportAborted State = "import_aborted"
	StateImportSkipped State = "import_skipped"
)

// States lists every state in lifecycle order.
var States = []State{
	StateDefault, StatePreImporting, StatePreImportDone, StateImporting,
	StateImportDone, StateImportAborted, StateImportSkipped,
}

// InProgressStates are the states that hold one unit of import capacity:
// the registry is working on the repository, or is about to.
var InProgressStates = []State{StatePreImporting, StatePreImportDone, StateImporting}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, known := range States {
		if s == known {
			return true
		}
	}
	return false
}

// InProgress reports whether s holds import capacity.
func (s State) InProgress() bool {
	for _, p := range InProgressStates {
		if s == p {
			return true
		}
	}
	return false
}

// Event moves a repository from one state to another.
type Event string

// The migration events.
const (
	EventStartPreImport  Event = "start_pre_import"
	EventFinishPreImport Event = "finish_pre_import"
	EventStartImport     Event = "start_import"
	EventFinishImport    Event = "finish_import"
	EventAbort           Event = "abort"
	EventSkip            Event = "skip"
	EventRetry           Event = "retry"
	// EventReset gives a skipped repository a new start: back to
	// StateDefault with its retry count at zero (an administrator's
	// operation, see Enqueuer.ResetSkipped).
	EventReset Event = "reset"
	// EventResumePreImport and EventResumeImport take an aborted
	// repository back to the pass the registry reports still running
	// (reconciliation before a retry), without a new start.
	EventResumePreImport Event = "resume_pre_import"
	EventResumeImport    Event = "resume_import"
)

// Events lists every event.
var Events = []Event{
	EventStartPreImport, EventFinishPreImport, EventStartImport, EventFinishImport,
	EventAbort, EventSkip, EventRetry, EventReset, EventResumePreImport, EventResumeImport,
}

// rule is one event's target and the states it may leave.
type rule struct {
	to   State
	from []State
}

// rules is the whole state machine. Each event has exactly one target, so
// "event from state" either names a transition or is an error.
var rules = map[Event]rule{
	EventStartPreImport: {to: StatePreImporting, from: []State{StateDefault}},
	// From import_aborted too: reconciliation found that the registry
	// finished the pass after all (its notification was lost).
	EventFinishPreImport: {to: StatePreImportDone, from: []State{StatePreImporting, StateImportAborted}},
	EventStartImport:     {to: StateImporting, from: []State{StatePreImportDone}},
	EventFinishImport:    {to: StateImportDone, from: []State{StateImporting, StateImportAborted}},
	EventAbort:           {to: StateImportAborted, from: []State{StatePreImporting, StatePreImportDone, StateImporting}},
	// A skip ends the migration for a reason (too many tags, cancelled,
	// not found at the registry, …) from any state but the end ones.
	EventSkip: {to: StateImportSkipped, from: []State{StateDefault, StatePreImporting, StatePreImportDone, StateImporting, StateImportAborted}},
	// A retry starts over with a pre-import: the registry's pre-import is
	// incremental, so what an earlier attempt copied is not copied again.
	EventRetry:           {to: StatePreImporting, from: []State{StateImportAborted}},
	EventReset:           {to: StateDefault, from: []State{StateImportSkipped}},
	EventResumePreImport: {to: StatePreImporting, from: []State{StateImportAborted}},
	EventResumeImport:    {to: StateImporting, from: []State{StateImportAborted}},
}

// Target returns the state ev leads to, whatever the starting state.
func (ev Event) Target() (State, bool) {
	r, ok := rules[ev]
	return r.to, ok
}

// NeedsReason reports whether ev records a reason (abort and skip do).
func (ev Event) NeedsReason() bool { return ev == EventAbort || ev == EventSkip }

// Next returns the state that ev leads to from s. An event that is not
// allowed from s is a *TransitionError naming both states.
func Next(s State, ev Event) (State, error) {
	r, ok := rules[ev]
	if !ok {
		return "", &TransitionError{From: s, Event: ev}
	}
	for _, f := range r.from {
		if f == s {
			return r.to, nil
		}
	}
	return "", &TransitionError{From: s, To: r.to, Event: ev}
}

// TransitionError reports an event that the state machine does not allow
// from the repository's state. It wraps ErrInvalidTransition.
type TransitionError struct {
	From  State
	To    State // empty when Event is unknown
	Event Event
}

// Error implements error.
func (e *TransitionError) Error() string {
	if e.To == "" {
		return fmt.Sprintf("enqueuer: unknown event %q (state %s)", e.Event, e.From)
	}
	return fmt.Sprintf("enqueuer: invalid transition from %s to %s (event %s)", e.From, e.To, e.Event)
}

// Unwrap returns ErrInvalidTransition.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
