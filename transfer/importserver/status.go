package importserver

import (
	"fmt"
	"time"

	"github.com/ferryhq/ferry/internal/clip"
)

// Status is where a repository's import is, in the words of the import
// protocol. The values are exactly those of enqueuer.RegistryStatus (the
// coordinator's side), which a test keeps in step.
type Status string

// The statuses the server reports (GET) and notifies (the terminal ones).
const (
	StatusNative              Status = "native"
	StatusPreImportInProgress Status = "pre_import_in_progress"
	StatusPreImportComplete   Status = "pre_import_complete"
	StatusPreImportFailed     Status = "pre_import_failed"
	StatusPreImportCanceled   Status = "pre_import_canceled"
	StatusImportInProgress    Status = "import_in_progress"
	StatusImportComplete      Status = "import_complete"
	StatusImportFailed        Status = "import_failed"
	StatusImportCanceled      Status = "import_canceled"
)

// Statuses lists every status a Store records (all but StatusNative,
// which the host's Config.Native decides).
var Statuses = []Status{
	StatusPreImportInProgress, StatusPreImportComplete, StatusPreImportFailed, StatusPreImportCanceled,
	StatusImportInProgress, StatusImportComplete, StatusImportFailed, StatusImportCanceled,
}

// InProgress reports whether s is a running pre-import or final import.
func (s Status) InProgress() bool {
	return s == StatusPreImportInProgress || s == StatusImportInProgress
}

// Type is the import type of a status.
func (s Status) Type() Type {
	switch s {
	case StatusPreImportInProgress, StatusPreImportComplete, StatusPreImportFailed, StatusPreImportCanceled:
		return PreImport
	case StatusImportInProgress, StatusImportComplete, StatusImportFailed, StatusImportCanceled:
		return FinalImport
	}
	return ""
}

// Valid reports whether a Store may record s.
func (s Status) Valid() bool { return s.Type() != "" }

// Type is an import type: the query parameter import_type=pre|final.
type Type string

// The import types.
const (
	// PreImport copies blobs and manifests, not tags; the repository stays
	// writable (see Config.Guard).
	PreImport Type = "pre"
	// FinalImport copies what the pre-import left and the tags, with the
	// repository read-only.
	FinalImport Type = "final"
)

// ParseType checks an import_type value. The error wraps ErrInvalidType.
func ParseType(s string) (Type, error) {
	switch Type(s) {
	case PreImport, FinalImport:
		return Type(s), nil
	case "":
		return "", fmt.Errorf("%w: missing (want %q or %q)", ErrInvalidType, PreImport, FinalImport)
	}
	return "", fmt.Errorf("%w: %q (want %q or %q)", ErrInvalidType, clip.Marked(s, 64), PreImport, FinalImport)
}

// InProgress is the status of a running import of type t.
func (t Type) InProgress() Status {
	if t == PreImport {
		return StatusPreImportInProgress
	}
	return StatusImportInProgress
}

// Outcome is the terminal status of an import of type t that ended with
// o: Complete, Failed or Canceled.
func (t Type) Outcome(o Result) Status {
	pre := t == PreImport
	switch {
	case o == Complete && pre:
		return StatusPreImportComplete
	case o == Complete:
		return StatusImportComplete
	case o == Canceled && pre:
		return StatusPreImportCanceled
	case o == Canceled:
		return StatusImportCanceled
	case pre:
		return StatusPreImportFailed
	}
	return StatusImportFailed
}

// String returns the protocol's name for t.
func (t Type) String() string { return string(t) }

// Result is how an import ended, whatever its type.
type Result string

// The results.
const (
	Complete Result = "complete"
	Failed   Result = "failed"
	Canceled Result = "canceled"
)

// Result returns how the import with status s ended; "" while it runs.
func (s Status) Result() Result {
	switch s {
	case StatusPreImportComplete, StatusImportComplete:
		return Complete
	case StatusPreImportFailed, StatusImportFailed:
		return Failed
	case StatusPreImportCanceled, StatusImportCanceled:
		return Canceled
	}
	return ""
}

// Counts is what an import copied, from its transfer.Report.
type Counts struct {
	BlobsCopied  int64 `json:"blobs_copied"`
	BlobsSkipped int64 `json:"blobs_skipped"`
	BytesCopied  int64 `json:"bytes_copied"`
	Manifests    int   `json:"manifests"`
	Tags         int   `json:"tags"`
}

// Import is one repository's import record: the last pre-import or final
// import started for it. Every start increments Run, so (Path, Run) names
// one attempt; compare-and-set changes name it.
type Import struct {
	Path   string
	Type   Type
	Status Status
	// Detail explains Status: the error of a failed import, why it was
	// canceled, or a short description.
	Detail string
	// Run counts the starts of the repository's imports, from 1.
	Run int64
	// Owner is the Config.Instance that runs (or ran) the import.
	Owner string
	// CancelRequested is set while a running import is asked to stop
	// (DELETE, or a write during a pre-import).
	CancelRequested bool
	// Counts is what the import copied (zero while it runs).
	Counts Counts
	// StartedAt is when the current run started, HeartbeatAt when its
	// owner last said it still runs, FinishedAt when it ended (zero while
	// it runs). Times come from the store's clock.
	StartedAt   time.Time
	HeartbeatAt time.Time
	FinishedAt  time.Time
	UpdatedAt   time.Time
}

// Ref names the run of an import.
func (i Import) Ref() RunRef { return RunRef{Path: i.Path, Run: i.Run} }

// RunRef names one run of one repository's import.
type RunRef struct {
	Path string
	Run  int64
}

// MaxDetailLength bounds the Detail a store keeps, in bytes.
const MaxDetailLength = 4 << 10

// ClipDetail shortens a detail to MaxDetailLength bytes, on a rune
// boundary. Stores apply it.
func ClipDetail(s string) string { return clip.Marked(s, MaxDetailLength) }
