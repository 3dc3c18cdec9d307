package transfer

import (
	"context"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sink receives the metadata of imported repositories: the registry that
// is being migrated to implements it (typically over its database).
//
// The importer calls a Sink in an order that never leaves a reference
// dangling: CreateRepository first; LinkBlob only after the blob has been
// transferred and verified; PutManifest only after every blob it references
// has been linked and every child manifest has been put; Tag only after its
// manifest has been put; Untag, in the final pass, for tags the sink holds
// that the source no longer has; then (see StalePolicy) DeleteManifest for
// manifests no tag and no kept manifest reaches any more, indexes before
// their children, and UnlinkBlob for blobs no kept manifest references.
// Every method must be idempotent: calling it again
// with the same arguments changes nothing. Methods may be called
// concurrently, for different repositories and for different blobs of the
// same repository.
type Sink interface {
	// CreateRepository makes sure the repository exists.
	CreateRepository(ctx context.Context, repo string) error
	// LinkBlob makes a transferred blob available in the repository. A
	// blob that the repository's manifests reference under several media
	// types (say a Docker and an OCI layer type) is linked once per media
	// type, so a sink that records media types keeps each.
	LinkBlob(ctx context.Context, repo string, blob ocispec.Descriptor) error
	// HasManifest reports whether the manifest was already put in the
	// repository, in which case the importer skips it and everything it
	// references. It is what makes a second pass fast.
	HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error)
	// PutManifest records a manifest (with its payload) in the repository.
	PutManifest(ctx context.Context, repo string, m *Manifest) error
	// Tag points tag at the manifest digest, replacing any older target.
	Tag(ctx context.Context, repo, tag string, d digest.Digest) error
	// Tags returns the repository's tags and their targets (none for a
	// repository the sink does not have). The final pass compares them
	// with the source to remove stale ones.
	Tags(ctx context.Context, repo string) (map[string]digest.Digest, error)
	// Untag removes a tag; the manifest stays. Removing a tag that does
	// not exist is not an error.
	Untag(ctx context.Context, repo, tag string) error
	// Manifests returns the digests of the manifests put in the
	// repository (none for a repository the sink does not have). The
	// final pass compares them with the source to find stale ones.
	Manifests(ctx context.Context, repo string) ([]digest.Digest, error)
	// Blobs returns the digests of the blobs linked in the repository.
	Blobs(ctx context.Context, repo string) ([]digest.Digest, error)
	// DeleteManifest removes a manifest from the repository; no tag and
	// no manifest left in the repository refers to it. Deleting one that
	// is not there is not an error.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// UnlinkBlob removes the repository's link to a blob that no manifest
	// left in it references; the blob's data stays (other repositories
	// may link it; the registry's garbage collector decides). Unlinking a
	// blob that is not linked is not an error.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
}

// ReferrersLister is implemented by Sinks that can answer the OCI
// referrers question from what they received: the manifests of repo whose
// subject is d, as descriptors (media type, digest, size, artifactType,
// annotations). MemSink and LayoutSink implement it.
type ReferrersLister interface {
	Referrers(ctx context.Context, repo string, d digest.Digest) ([]ocispec.Descriptor, error)
}
