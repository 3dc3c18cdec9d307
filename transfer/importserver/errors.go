package importserver

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these when
// the condition applies, so callers test them with errors.Is.
var (
	// ErrConfig reports a Config that cannot be used.
	ErrConfig = errors.New("importserver: invalid config")

	// ErrInvalidPath means a repository path is not a valid repository
	// name (HTTP 400).
	ErrInvalidPath = errors.New("importserver: invalid repository path")

	// ErrInvalidType means import_type is missing or not "pre" or "final"
	// (HTTP 400).
	ErrInvalidType = errors.New("importserver: invalid import type")

	// ErrNotFound means the store has no import record for the repository.
	ErrNotFound = errors.New("importserver: no import recorded")

	// ErrStateChanged means a compare-and-set change lost: the import was
	// no longer the run, or in the status, the caller named.
	ErrStateChanged = errors.New("importserver: import state changed")

	// ErrAlreadyImported refuses a start: the final import completed
	// (HTTP 200, nothing to do).
	ErrAlreadyImported = errors.New("importserver: repository already imported")

	// ErrImportInProgress refuses a start: an import of the repository is
	// running (HTTP 409).
	ErrImportInProgress = errors.New("importserver: import already in progress")

	// ErrPreImportInProgress refuses a final import: the repository's
	// pre-import still runs (HTTP 425).
	ErrPreImportInProgress = errors.New("importserver: pre-import still in progress")

	// ErrPreImportRequired refuses a final import: the repository's last
	// run is not a completed pre-import (it failed or was canceled, there
	// was none, or a final import failed since) (HTTP 424).
	ErrPreImportRequired = errors.New("importserver: pre-import failed or missing")

	// ErrTooManyImports refuses a start: the configured maximum of
	// concurrent imports is reached (HTTP 429).
	ErrTooManyImports = errors.New("importserver: too many imports in progress")

	// ErrNotInProgress refuses a cancellation: nothing runs (HTTP 400).
	ErrNotInProgress = errors.New("importserver: no import in progress")

	// ErrUnauthenticated is what an Authorizer returns (wrapped) for
	// missing or malformed credentials (HTTP 401); any other error from
	// it means the credentials were refused (HTTP 403).
	ErrUnauthenticated = errors.New("importserver: missing credentials")

	// ErrNotRunning means the Server has not been started or is shutting
	// down (HTTP 503 for starts).
	ErrNotRunning = errors.New("importserver: server not running")
)

// RefusedError is a start the store refused. It wraps the reason
// (ErrAlreadyImported, ErrImportInProgress, ErrPreImportInProgress,
// ErrPreImportRequired or ErrTooManyImports) and carries the repository's
// current import record, if it has one.
type RefusedError struct {
	Reason  error
	Current Import
	// Running is the number of imports in progress that the store
	// counted (for ErrTooManyImports).
	Running int
}

// Error implements error.
func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("%v: %s", e.Reason, e.Current.Path)
	if e.Current.Status != "" {
		msg += fmt.Sprintf(" (status %s, run %d)", e.Current.Status, e.Current.Run)
	}
	if errors.Is(e.Reason, ErrTooManyImports) {
		msg += fmt.Sprintf(" (%d running)", e.Running)
	}
	return msg
}

// Unwrap returns Reason.
func (e *RefusedError) Unwrap() error { return e.Reason }
