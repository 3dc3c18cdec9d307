package transfer

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package that is caused by
// one of these conditions wraps the sentinel, so callers can test with
// errors.Is.
var (
	// ErrCorrupt means a blob's content does not match its digest or its
	// recorded size: the copy was aborted and nothing landed.
	ErrCorrupt = errors.New("transfer: blob is corrupt")

	// ErrInvalidDigest means a digest is not "<algorithm>:<lowercase hex>"
	// for an algorithm go-digest supports (sha256, sha384, sha512) with
	// the right length.
	ErrInvalidDigest = errors.New("transfer: invalid digest")

	// ErrInvalidName means a repository or tag name does not follow the
	// distribution naming rules (this includes ".." and other path tricks).
	ErrInvalidName = errors.New("transfer: invalid name")

	// ErrInvalidPath means a key in the storage layout does not have the
	// expected shape.
	ErrInvalidPath = errors.New("transfer: invalid layout path")

	// ErrBadLink means a link file in the storage layout is malformed or
	// disagrees with the path it is stored under.
	ErrBadLink = errors.New("transfer: malformed link file")

	// ErrBadManifest means a manifest could not be parsed or is not a
	// supported kind.
	ErrBadManifest = errors.New("transfer: bad manifest")

	// ErrMissingBlob means the layout points at a blob whose data is not in
	// the source bucket.
	ErrMissingBlob = errors.New("transfer: blob not found")
)

// RepositoryError reports a failure to import one repository.
type RepositoryError struct {
	Repository string
	Err        error
}

// Error implements error.
func (e *RepositoryError) Error() string {
	return fmt.Sprintf("transfer: repository %q: %v", e.Repository, e.Err)
}

// Unwrap returns the underlying error.
func (e *RepositoryError) Unwrap() error { return e.Err }
