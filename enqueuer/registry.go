package enqueuer

import (
	"context"
	"fmt"
	"time"
)

// RegistryClient drives imports on the registry. Starting is asynchronous:
// the registry answers at once and later reports the outcome to the
// notification endpoint (see Handler).
//
// Implementations: HTTPRegistry, and enqueuertest.Registry for tests.
// Errors wrap ErrTooManyImports, ErrTooEarly, ErrRegistryUnavailable,
// ErrNative, ErrImportInProgress, ErrPreImportFailed or ErrRegistryNotFound when they
// apply; the Enqueuer decides by them whether a repository is to blame.
type RegistryClient interface {
	// StartPreImport asks the registry to pre-import the repository at
	// path: copy its manifests and blobs' metadata, but not its tags.
	StartPreImport(ctx context.Context, path string) error
	// StartImport asks for the final import, which also moves the tags;
	// it is short when a pre-import has completed.
	StartImport(ctx context.Context, path string) error
	// ImportStatus reads the registry's view of the repository's import.
	ImportStatus(ctx context.Context, path string) (ImportStatus, error)
	// CancelImport stops a running pre-import or import.
	CancelImport(ctx context.Context, path string) error
}

// RegistryStatus is the registry's word for where an import is.
type RegistryStatus string

// The statuses the registry reports.
const (
	StatusNative              RegistryStatus = "native"
	StatusPreImportInProgress RegistryStatus = "pre_import_in_progress"
	StatusPreImportComplete   RegistryStatus = "pre_import_complete"
	StatusPreImportFailed     RegistryStatus = "pre_import_failed"
	StatusPreImportCanceled   RegistryStatus = "pre_import_canceled"
	StatusImportInProgress    RegistryStatus = "import_in_progress"
	StatusImportComplete      RegistryStatus = "import_complete"
	StatusImportFailed        RegistryStatus = "import_failed"
	StatusImportCanceled      RegistryStatus = "import_canceled"
	StatusUnknown             RegistryStatus = ""
)

// ImportStatus is the answer of RegistryClient.ImportStatus.
type ImportStatus struct {
	Status RegistryStatus `json:"status"`
	// Detail is the registry's explanation, if any.
	Detail string `json:"detail,omitempty"`
	// Progress is how far an import in progress has got, if the registry
	// says (Ferry's importserver does; GitLab's registry does not).
	Progress *ImportProgress `json:"progress,omitempty"`
}

// ImportProgress is how far a running pre-import or import has got: Done
// of Total units of work (for Ferry's importserver: the blob transfers
// and, in a final import, tag writes of its plan) counted since Since,
// when the registry had planned the import, as of At. Since and At are
// both the registry's clock, so the rate Done over At-Since does not
// depend on how far the two hosts' clocks differ. Forecast reads it to
// tell how long the rest will take.
type ImportProgress struct {
	Done  int64     `json:"done"`
	Total int64     `json:"total"`
	Since time.Time `json:"since"`
	// At is when the registry answered; a registry that leaves it out is
	// taken to answer at the coordinator's now.
	At time.Time `json:"at,omitempty"`
}

// maxProgressLeft bounds ImportProgress.Left: a far-fetched answer stays
// a finite, positive duration.
const maxProgressLeft = 100 * 365 * 24 * time.Hour

// Left estimates how long the rest of the counted units takes, at the
// rate so far, as of p.At (or now when p.At is zero), at most a century;
// 0 once everything counted is done (so a registry should count all of a
// phase's work, not only its blobs). ok is false when p cannot tell:
// nothing done yet, no start, a start after At, or counts out of range.
func (p ImportProgress) Left(now time.Time) (left time.Duration, ok bool) {
	at := p.At
	if at.IsZero() {
		at = now
	}
	ran := at.Sub(p.Since)
	if p.Since.IsZero() || ran <= 0 || p.Done <= 0 || p.Done > p.Total {
		return 0, false
	}
	ns := float64(ran) * float64(p.Total-p.Done) / float64(p.Done)
	if ns >= float64(maxProgressLeft) {
		return maxProgressLeft, true
	}
	return time.Duration(ns), true
}

// registryRuns reports whether the registry's status says it runs the
// phase the enqueuer's state is in.
func registryRuns(s State, st RegistryStatus) bool {
	return (s == StatePreImporting && st == StatusPreImportInProgress) ||
		(s == StateImporting && st == StatusImportInProgress)
}

// InProgress reports whether the registry is still working on the import.
func (s ImportStatus) InProgress() bool {
	return s.Status == StatusPreImportInProgress || s.Status == StatusImportInProgress
}

// RegistryError is a registry answer that is not a success. It wraps one of
// the package's sentinel errors when one applies (Err), so errors.Is works.
type RegistryError struct {
	// Op is what was asked: "pre-import", "import", "status" or "cancel".
	Op string
	// Path is the repository.
	Path string
	// StatusCode is the HTTP status, 0 when no response arrived.
	StatusCode int
	// Body is the start of the response body, for the log.
	Body string
	// Err is the sentinel (or transport error) behind the failure.
	Err error
}

// Error implements error.
func (e *RegistryError) Error() string {
	msg := fmt.Sprintf("enqueuer: registry %s of %s", e.Op, e.Path)
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.StatusCode)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Body != "" {
		msg += fmt.Sprintf(" (body: %q)", e.Body)
	}
	return msg
}

// Unwrap returns Err.
func (e *RegistryError) Unwrap() error { return e.Err }
