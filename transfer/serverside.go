package transfer

import (
	"context"
	"io"
)

// ServerSideCopier copies objects inside one storage service, so that blob
// bytes need not pass through this process. The core package knows no
// storage service; package transfer/gcscopy implements it for Google Cloud
// Storage (the rewrite API), and a host passes it in Options.ServerSide.
//
// Keys are the same in both buckets. Errors for a missing bucket must be
// (or wrap) a *BucketError naming it; a missing source object must wrap
// ErrMissingBlob; a pinned source version that no longer exists must wrap
// ErrSourceChanged. Transient failures are retried by the Transferer under
// its RetryPolicy, so implementations should not retry on their own.
type ServerSideCopier interface {
	// Source describes the current source object at key.
	Source(ctx context.Context, key string) (ObjectVersion, error)
	// Destination describes the destination object at key; ok is false
	// when there is none.
	Destination(ctx context.Context, key string) (v ObjectVersion, ok bool, err error)
	// ReadSource opens exactly version v of the source object, so that
	// what the Transferer hashes is what Copy copies.
	ReadSource(ctx context.Context, key string, v ObjectVersion) (io.ReadCloser, error)
	// Copy copies version v of the source object to the destination,
	// setting metadata on the copy, and returns the version that landed.
	// progress carries resumption state (a rewrite token) from one
	// attempt of a copy to the next; it starts zero.
	Copy(ctx context.Context, key string, v ObjectVersion, metadata map[string]string, progress *CopyProgress) (ObjectVersion, error)
	// RemoveDestination deletes exactly version v of the destination
	// object: a copy that failed verification.
	RemoveDestination(ctx context.Context, key string, v ObjectVersion) error
}

// ObjectVersion describes one version of a stored object.
type ObjectVersion struct {
	Size int64
	// Generation identifies exactly this content ("" if the service has
	// no such notion).
	Generation string
	// Checksum is the service's own checksum of the content, with its
	// kind ("crc32c:1b2c3d4e"); "" if it has none.
	Checksum string
	// Metadata is the object's custom metadata.
	Metadata map[string]string
}

// CopyProgress is a ServerSideCopier's state between attempts of one
// copy.
type CopyProgress struct {
	// Token resumes a copy that the service does in several calls.
	Token string
	// BytesDone is how far the service says it got.
	BytesDone int64
}

// ServerSideVerify says how a server-side copy is checked against the
// blob's digest.
type ServerSideVerify int

const (
	// VerifySource (the default) reads the pinned source version through
	// this process once, hashes it against the digest without writing it
	// anywhere, then has the service copy exactly that version and checks
	// the copy's size and service checksum against it. Blob bytes are read
	// once; none are written by the host.
	VerifySource ServerSideVerify = iota
	// TrustChecksums moves no blob bytes through this process: the copy
	// is checked only against the source object's size and service
	// checksum. A source object whose content does not match its digest
	// is copied as it is. Choose it only if the source bucket is trusted
	// to hold what its keys say.
	TrustChecksums
)

// String returns "verify-source" or "trust-checksums".
func (v ServerSideVerify) String() string {
	if v == TrustChecksums {
		return "trust-checksums"
	}
	return "verify-source"
}

// Metadata keys Ferry sets on every object it writes. An object that
// carries them was verified against MetadataDigest before it was
// committed.
const (
	// MetadataDigest records the digest the content was verified against.
	MetadataDigest = "ferry-digest"
	// MetadataChecksum records the service checksum (ObjectVersion.Checksum)
	// of the verified content, where the service offers one (server-side
	// copies).
	MetadataChecksum = "ferry-checksum"
)
