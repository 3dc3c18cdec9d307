package transfer

import (
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors. Every error returned by this package that is caused by
// one of these conditions wraps the sentinel, so callers can test with
// errors.Is.
var (
	// ErrCorrupt means a blob's content does not match its digest or its
	// recorded size: the copy was aborted and nothing landed. Errors that
	// wrap it also wrap ErrCorruptInTransit or ErrCorruptAtRest, which say
	// where the damage was seen.
	ErrCorrupt = errors.New("transfer: blob is corrupt")

	// ErrCorruptInTransit means reads of a blob kept returning content
	// that does not match its digest, but not the same wrong content each
	// time (or the storage client's own checksum failed): the bytes were
	// damaged on the way, and the object itself may well be fine. It is
	// reported only after Options.CorruptRetries more reads failed too.
	ErrCorruptInTransit = errors.New("corrupt in transit")

	// ErrCorruptAtRest means a stored object does not match its digest:
	// repeated reads returned the same wrong content, or a size or
	// recorded checksum disagrees with what the digest requires.
	ErrCorruptAtRest = errors.New("corrupt at rest")

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

	// ErrBucketNotFound means a bucket does not exist (or cannot be seen
	// with the credentials in use). The error names the bucket.
	ErrBucketNotFound = errors.New("transfer: bucket not found")

	// ErrSourceChanged means the source object was replaced between the
	// moment it was checked and the copy (a new generation). It is
	// retried: the next attempt checks the new object.
	ErrSourceChanged = errors.New("transfer: source object changed during the copy")

	// ErrEmptySource means an Importer found no repository at all under
	// its root: the source bucket is empty or the root is mistyped.
	ErrEmptySource = errors.New("transfer: no repositories in the source")
)

// CorruptError reports a blob whose content does not match its digest. It
// wraps ErrCorrupt and either ErrCorruptInTransit or ErrCorruptAtRest.
type CorruptError struct {
	// Digest is the blob's digest.
	Digest digest.Digest
	// Where is ErrCorruptInTransit or ErrCorruptAtRest.
	Where error
	// Object says which object was read: "source", "destination" or
	// "server-side copy".
	Object string
	// Detail says what was wrong (what the content hashed to, sizes).
	Detail string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v (%v, %s): %s: %s", ErrCorrupt, e.Where, e.Object, e.Digest, e.Detail)
}

// Unwrap returns ErrCorrupt and where the corruption was seen.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Where} }

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

// BucketError reports that a bucket does not exist. It wraps
// ErrBucketNotFound.
type BucketError struct {
	// Bucket names the bucket (Options.SourceName or DestinationName, or
	// the provider's bucket name when a ServerSideCopier knows it).
	Bucket string
	// Err is the storage error that revealed it.
	Err error
}

// Error implements error.
func (e *BucketError) Error() string {
	return fmt.Sprintf("%v: %s: %v", ErrBucketNotFound, e.Bucket, e.Err)
}

// Unwrap returns ErrBucketNotFound and the storage error.
func (e *BucketError) Unwrap() []error { return []error{ErrBucketNotFound, e.Err} }
