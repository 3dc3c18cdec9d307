// Package transfer moves a container registry's blobs and metadata from one
// bucket to another without trusting either: every blob is verified
// against its digest, transient storage failures are retried, and the
// import of the distribution storage layout is concurrent, resumable and
// idempotent.
//
// Digests are github.com/opencontainers/go-digest's digest.Digest and
// descriptors image-spec's ocispec.Descriptor, so hosts built on
// distribution or containerd pass theirs straight in. Every algorithm
// go-digest knows (sha256, sha384, sha512) is verified with its own hash.
//
// # Transferer
//
// A Transferer copies one blob by digest between two Buckets. Bucket is
// this package's own small interface (read, write with metadata,
// attributes, list, delete; ErrNotExist for what is not there), so the
// package links no storage client at all: package transfer/gocloudblob
// adapts any gocloud.dev/blob bucket (fileblob, memblob, gcsblob, s3blob,
// azureblob, ...), and a registry with its own storage driver implements
// Bucket directly and checks it with transfertest.BucketSuite
// (transfertest.MemBucket is an in-memory one for tests):
//
//	b, err := blob.OpenBucket(ctx, "gs://registry-eu") // gocloud.dev/blob
//	src := gocloudblob.New(b)
//	tr, err := transfer.New(src, dst, transfer.Options{})
//	res, err := tr.Transfer(ctx, "sha256:...")
//
// Every path checks content against the digest unless an option that says
// otherwise by name is set:
//
//   - A streamed copy hashes the bytes as they pass and holds the last chunk
//     back until the digest and size match; on a mismatch the destination
//     writer's context is cancelled before Close, so the object never
//     appears (and one a driver commits anyway is removed).
//   - A server-side copy (Options.ServerSide, e.g. transfer/gcscopy between
//     GCS buckets) first reads the source, pinned to one generation,
//     through the host without writing it and hashes it; then the service
//     copies exactly that generation and the copy's size and checksum are
//     compared with it (ServerSideVerify: VerifySource, the default).
//     ServerSideVerify: TrustChecksums moves no blob bytes through the host
//     and does not check content against the digest.
//   - A blob already at the destination is kept only if verified
//     (Existing: VerifyChecksum, the default, trusts objects Ferry wrote,
//     recognised by the digest it records in their metadata, and hashes
//     any other; VerifyContent hashes all; TrustSize checks the size only).
//     A mismatch is replaced, or reported with ReportMismatched.
//
// Content that does not match its digest is read again (CorruptRetries,
// default 2) since a bit may have flipped on the way; then the error is a
// *CorruptError that says whether the reads agreed (ErrCorruptAtRest) or
// not (ErrCorruptInTransit), and names the digest. Failures that look
// transient (HTTP 408, 429 and 5xx, which gocloudblob also derives from
// gocloud, Google API and gRPC errors, truncated reads, a storage
// client's failed checksum, a source replaced during a copy) are retried
// with exponential backoff and jitter, a bounded number of times, and never
// after the context ends. A copy that committed but whose answer was lost
// is found on the retry and reported as copied, not skipped. A missing
// bucket is a *BucketError naming it (Options.SourceName, DestinationName).
//
// A crash mid-copy never leaves a blob under its key, since only verified
// content is committed. fileblob leaves its temporary file
// ("<key>.<hex>.tmp"), in os.TempDir() or, with no_tmp_dir, next to the key
// where List returns it (IsLeftover tells them apart); gocloudblob removes
// stale ones next to a key it writes, and SweepLeftovers removes all of
// them from any Bucket. gcsblob and s3blob leave only upload sessions the
// service discards.
//
// # Importer
//
// An Importer walks the distribution storage layout in a source bucket,
// sends blobs through a Transferer and metadata to a Sink (the destination
// registry's database, or LayoutSink to write the layout into another
// bucket). It runs in two passes. PreImport copies blobs and manifests
// while the source registry still takes writes; Import (the final pass)
// catches up on anything new and records tags, with the repository
// read-only. Both are idempotent: a manifest the Sink already has is
// skipped with everything it references, and blobs already at the
// destination are not copied again.
//
// What a registry serving the source serves comes along: the manifests of
// the selected tags, their index children (buildx attestation manifests
// included) and, transitively, every revision whose OCI 1.1 subject is
// imported (signatures, SBOMs, attestations, referrers of referrers), plus
// cosign ("sha256-<hex>.sig"/".att"/".sbom") and referrers-fallback
// ("sha256-<hex>") tags naming an imported manifest, whatever the tag
// policy. Referrers of manifests that are not imported follow
// IncludeUntagged; SkipReferrers turns this off. Sinks that implement
// ReferrersLister (MemSink, LayoutSink) answer "referrers of D".
//
// IncludeUntagged adds every revision; IncludeOrphanLayers adds blobs that
// _layers links but no imported manifest references. VerifyExisting makes
// a pass re-check, through the Transferer, the destination blobs of
// manifests the Sink already has.
//
// Re-runs converge: the final pass removes the tags the Sink holds that the
// source no longer has or the policy no longer selects (Sink.Untag), and
// moved tags are pointed at their new manifest. Then (ImportOptions.Stale,
// default RemoveStale) it removes the manifests and blob links that only
// such tags reached (Sink.DeleteManifest, indexes first, and
// Sink.UnlinkBlob), so that a pre-import followed by a final import leaves
// the repository exactly as a one-pass import of the final source would;
// ReportStale only lists them (RepositoryReport.StaleManifests,
// StaleBlobs), KeepStale skips the check and the manifest reads it costs.
// Blob data stays in the destination bucket for the registry's garbage
// collector. Tag policies see the
// repository (PerRepository; NewestSemver keeps the N highest semantic
// versions, ordered by github.com/Masterminds/semver/v3).
//
// Repositories are discovered by a streaming walk (LayoutReader.
// WalkRepositories: each directory listed once, a bounded window listed
// ahead) and imported as they are found; the blobs an import remembers as
// copied are bounded (DedupeCacheSize), so memory does not grow with the
// registry.
//
// An Importer that finds no repository at all fails with ErrEmptySource and
// says what the bucket holds instead (an empty bucket or a mistyped Root);
// a named repository that is not in the source fails the same way.
//
// Each repository is first read and validated completely: links, digests,
// names, manifests, and the existence and size of every blob. Only then is
// anything written, in an order that never leaves a dangling reference
// (blobs, then manifests children-first, then tags). Bad input fails that
// repository with an error wrapping ErrBadLink, ErrInvalidDigest,
// ErrInvalidName, ErrInvalidPath, ErrBadManifest, ErrCorrupt or
// ErrMissingBlob that says where the problem is; ContinueOnError decides
// whether the other repositories go on.
//
// Tag policies (AllTags, MostRecentTags, SemverTags, MatchingTags) choose
// what is imported; MaxTags puts repositories with too many tags in a
// catalog instead; DryRun reports what would happen. Repositories and blobs
// are processed concurrently under limits, a blob shared by several
// repositories is copied once, and a Progress callback reports counts,
// bytes, rate, per-repository and per-blob timings and an ETA.
//
// # Observability
//
// Options.Observer is told about every Transfer (skipped, streamed or
// server-side, bytes, attempts, duration, error) and every retry of a copy,
// classified by cause (ClassifyRetry: throttled, server_error, timeout,
// truncated, connection); ImportOptions.Observer about every repository
// (imported, failed, too_large, dry_run), every pass and every retry of a
// source read. This is for metrics and tracing without a metrics dependency
// here: package prommetrics implements Observer with Prometheus. Hooks have
// pgx's tracer shape, like every Ferry package's: a pass, a repository and
// a blob get XStart, whose returned context the operation runs under, and
// XEnd with that context, so a pass's span is the parent of its
// repositories' and a repository's of its blobs' (a blob shared by several
// repositories is under the first that asked for it, though only the
// pass's end cancels it); retries are single calls.
//
// # The distribution storage layout
//
// The layout is the on-disk format of the CNCF distribution registry
// (registry:2). Every key lives under a root, by default
// "docker/registry/v2":
//
//	<root>/blobs/<algorithm>/<first 2 hex>/<hex>/data
//	    The content of every blob, manifests included, addressed by its
//	    digest (algorithm sha256, or sha512 where the registry writes
//	    those). Blobs are shared by all repositories.
//
//	<root>/repositories/<name>/
//	    A repository. <name> has one or more path components
//	    ("group/project/image"), each lowercase alphanumerics joined by
//	    ".", "_", "__" or dashes, so no component starts with "_". One
//	    repository's path may be a prefix of another's ("a/b" and
//	    "a/b/c"); a directory is a repository when it holds one of the
//	    underscore directories below.
//
//	<name>/_layers/<algorithm>/<hex>/link
//	    The repository may serve blob <hex> (configs and layers). Every link
//	    file holds the text "<algorithm>:<hex>".
//
//	<name>/_manifests/revisions/<algorithm>/<hex>/link
//	    Manifest <hex> belongs to the repository (tagged or not, including
//	    the children of multi-arch indexes).
//
//	<name>/_manifests/tags/<tag>/current/link
//	    The manifest the tag points to now. Its modification time is when
//	    the tag was last pushed, which orders tags by recency.
//
//	<name>/_manifests/tags/<tag>/index/<algorithm>/<hex>/link
//	    The tag's history: every manifest it has pointed to.
//
//	<name>/_uploads/<id>/...
//	    Uploads in progress; ignored.
//
// Manifests are JSON: Docker schema2 image manifests and manifest lists,
// and OCI image manifests and indexes. Image manifests reference a config
// blob and layer blobs; lists and indexes reference child manifests. Layers
// with URLs (foreign layers) may be absent from the blob store and are then
// skipped.
package transfer
