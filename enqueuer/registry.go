package enqueuer

import (
	"context"
	"fmt"
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
