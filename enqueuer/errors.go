package enqueuer

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these when
// the condition applies, so callers test them with errors.Is.
var (
	// ErrInvalidTransition means an event is not allowed from the
	// repository's state; the *TransitionError names both states.
	ErrInvalidTransition = errors.New("enqueuer: invalid transition")

	// ErrStateChanged means a compare-and-set transition lost: the
	// repository was no longer in the state the caller read.
	ErrStateChanged = errors.New("enqueuer: repository state changed")

	// ErrNotFound means the store has no such repository.
	ErrNotFound = errors.New("enqueuer: repository not found")

	// ErrExists means a repository with that path is already stored.
	ErrExists = errors.New("enqueuer: repository already exists")

	// ErrInvalidPath means a repository path is not a valid registry
	// repository name (empty segments, "..", upper case, too long, …).
	ErrInvalidPath = errors.New("enqueuer: invalid repository path")

	// ErrInvalidPriority refuses a Repository.Priority outside
	// [MinPriority, MaxPriority] (the Postgres column is an integer).
	ErrInvalidPriority = errors.New("enqueuer: invalid priority")

	// ErrConfig reports a Config or options struct that cannot be used.
	ErrConfig = errors.New("enqueuer: invalid config")

	// ErrInvalidOrder refuses an Order that is neither a named order nor
	// a list of known sort keys (an unknown or repeated field, an empty
	// key).
	ErrInvalidOrder = errors.New("enqueuer: invalid order")

	// ErrTooManyImports means the registry already runs as many imports as
	// it allows (HTTP 429). The enqueuer stops the run and marks nothing.
	ErrTooManyImports = errors.New("enqueuer: registry is running too many imports")

	// ErrRegistryUnavailable means the registry could not be reached or
	// kept failing (network errors, timeouts, 5xx) after the retries.
	ErrRegistryUnavailable = errors.New("enqueuer: registry unavailable")

	// ErrImportInProgress means the registry is already importing or
	// pre-importing the repository (HTTP 409).
	ErrImportInProgress = errors.New("enqueuer: import already in progress at the registry")

	// ErrTooEarly means the registry is not ready for this start yet
	// (HTTP 425): a final import while its pre-import still runs there
	// (Ferry's import server supersedes an undelivered outcome instead of
	// answering 425; other registries may not). It is a matter of
	// milliseconds to seconds (the notification that is on its way), not
	// the repository's fault: the enqueuer puts the repository back where
	// it was and ends the run, like a 429, and the next run starts it.
	ErrTooEarly = errors.New("enqueuer: registry not ready for this start yet")

	// ErrPreImportFailed means a final import was refused because the
	// repository's pre-import failed (HTTP 424).
	ErrPreImportFailed = errors.New("enqueuer: pre-import failed at the registry")

	// ErrNative means the registry already serves the repository from its
	// new metadata store, so there is nothing to import (HTTP 200 to a start).
	ErrNative = errors.New("enqueuer: repository is already native at the registry")

	// ErrTooManyAborts ends a run that aborted Config.MaxAbortsPerRun
	// repositories: the registry is probably refusing every start, and
	// going on would only use up the repositories' retries.
	ErrTooManyAborts = errors.New("enqueuer: too many aborted starts in one run")

	// ErrRegistryNotFound means the registry does not know the repository
	// (HTTP 404).
	ErrRegistryNotFound = errors.New("enqueuer: repository not found at the registry")

	// ErrImportNotInProgress answers a cancel when the registry runs no
	// import of the repository (HTTP 400): it finished, or it is between
	// its pre-import and its final import.
	ErrImportNotInProgress = errors.New("enqueuer: no import in progress at the registry")
)
