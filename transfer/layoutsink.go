package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayoutSink is a Sink that writes the distribution storage layout into a
// bucket: layer links, manifest payloads and revision links, tag links. With
// it, an import is a complete registry-to-registry copy that a distribution
// registry can serve from the destination bucket.
//
// Writes are skipped when the object already has the right content, so
// repeating an import does not even touch modification times.
//
// Besides the distribution layout it keeps a referrers index, so that
// "referrers of D" can be answered without reading every manifest: for a
// manifest with a subject, <repo>/_manifests/referrers/<subject
// algorithm>/<subject hex>/<algorithm>/<hex>/link names it (see
// Layout.ReferrerLinkKey). A distribution registry ignores the directory;
// a registry that serves the OCI referrers API from this layout lists it.
type LayoutSink struct {
	b      Bucket
	layout Layout
	retry  RetryPolicy
}

// NewLayoutSink returns a LayoutSink writing under layout in b. The zero
// RetryPolicy means the defaults.
func NewLayoutSink(b Bucket, layout Layout, retry RetryPolicy) *LayoutSink {
	return &LayoutSink{b: b, layout: layout, retry: retry.withDefaults()}
}

// CreateRepository validates the name. The layout has no repository
// marker: a repository appears with its first link.
func (s *LayoutSink) CreateRepository(_ context.Context, repo string) error {
	return ValidateRepository(repo)
}

// LinkBlob writes the repository's layer link for the blob.
func (s *LayoutSink) LinkBlob(ctx context.Context, repo string, desc ocispec.Descriptor) error {
	if err := s.check(repo, desc.Digest); err != nil {
		return err
	}
	return s.writeLink(ctx, s.layout.LayerLinkKey(repo, desc.Digest), desc.Digest)
}

// HasManifest reports whether the revision link exists and names d.
func (s *LayoutSink) HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	if err := s.check(repo, d); err != nil {
		return false, err
	}
	got, err := s.read(ctx, s.layout.RevisionLinkKey(repo, d))
	if isNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return string(bytes.TrimSpace(got)) == string(d), nil
}

// PutManifest stores the payload as a blob (after checking it hashes to
// the manifest's digest) and then writes the revision link.
func (s *LayoutSink) PutManifest(ctx context.Context, repo string, m *Manifest) error {
	if err := s.check(repo, m.Digest); err != nil {
		return err
	}
	if got := m.Digest.Algorithm().FromBytes(m.Payload); got != m.Digest {
		return &CorruptError{Digest: m.Digest, Where: ErrCorruptAtRest, Object: "manifest payload", Detail: fmt.Sprintf("payload hashes to %s", got)}
	}
	if err := s.writeIfDifferent(ctx, s.layout.BlobKey(m.Digest), m.Payload); err != nil {
		return err
	}
	if m.Subject != nil {
		// The referrers index goes first, so a revision never exists
		// without it.
		if err := s.writeLink(ctx, s.layout.ReferrerLinkKey(repo, m.Subject.Digest, m.Digest), m.Digest); err != nil {
			return err
		}
	}
	return s.writeLink(ctx, s.layout.RevisionLinkKey(repo, m.Digest), m.Digest)
}

// Tag writes the tag's history entry and then its current link.
func (s *LayoutSink) Tag(ctx context.Context, repo, tag string, d digest.Digest) error {
	if err := s.check(repo, d); err != nil {
		return err
	}
	if err := ValidateTag(tag); err != nil {
		return err
	}
	if err := s.writeLink(ctx, s.layout.TagIndexLinkKey(repo, tag, d), d); err != nil {
		return err
	}
	return s.writeLink(ctx, s.layout.TagCurrentLinkKey(repo, tag), d)
}

func (s *LayoutSink) check(repo string, d digest.Digest) error {
	if err := ValidateRepository(repo); err != nil {
		return err
	}
	return ValidateDigest(d)
}

func (s *LayoutSink) writeLink(ctx context.Context, key string, d digest.Digest) error {
	return s.writeIfDifferent(ctx, key, []byte(d))
}

func (s *LayoutSink) writeIfDifferent(ctx context.Context, key string, content []byte) error {
	got, err := s.read(ctx, key)
	if err == nil && bytes.Equal(got, content) {
		return nil
	}
	if err != nil && !isNotExist(err) {
		return err
	}
	_, err = s.retry.do(ctx, "write", func(ctx context.Context) error {
		return WriteAll(ctx, s.b, key, content, WriterOptions{ContentType: "application/octet-stream"})
	})
	if err != nil {
		return fmt.Errorf("writing %q: %w", key, err)
	}
	return nil
}

func (s *LayoutSink) read(ctx context.Context, key string) ([]byte, error) {
	var got []byte
	_, err := s.retry.do(ctx, "read", func(ctx context.Context) error {
		var err error
		got, _, err = readSmall(ctx, s.b, key, maxManifestSize)
		return err
	})
	return got, err
}

// Tags returns the repository's tags and the manifests their current links
// name.
func (s *LayoutSink) Tags(ctx context.Context, repo string) (map[string]digest.Digest, error) {
	if err := ValidateRepository(repo); err != nil {
		return nil, err
	}
	tags, err := s.reader().Tags(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := make(map[string]digest.Digest, len(tags))
	for _, t := range tags {
		out[t.Name] = t.Digest
	}
	return out, nil
}

// Untag deletes the tag's directory (its current link and its history), as
// the distribution registry does when a tag is deleted.
func (s *LayoutSink) Untag(ctx context.Context, repo, tag string) error {
	if err := ValidateRepository(repo); err != nil {
		return err
	}
	if err := ValidateTag(tag); err != nil {
		return err
	}
	return s.deletePrefix(ctx, s.layout.TagPrefix(repo, tag))
}

// Manifests returns the digests of the repository's revision links.
func (s *LayoutSink) Manifests(ctx context.Context, repo string) ([]digest.Digest, error) {
	return s.reader().Revisions(ctx, repo)
}

// Blobs returns the digests of the repository's layer links.
func (s *LayoutSink) Blobs(ctx context.Context, repo string) ([]digest.Digest, error) {
	return s.reader().Layers(ctx, repo)
}

// DeleteManifest deletes the manifest's referrers index entry (if it has
// a subject) and then its revision link, as the distribution registry
// deletes a manifest: the payload stays in the blob store for its garbage
// collector.
func (s *LayoutSink) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if err := s.check(repo, d); err != nil {
		return err
	}
	m, err := s.reader().Manifest(ctx, d)
	switch {
	case errors.Is(err, ErrMissingBlob):
		// No payload: it can have no referrers index entry either.
	case err != nil:
		return fmt.Errorf("reading manifest %s to delete it: %w", d, err)
	case m.Subject != nil:
		if err := s.deletePrefix(ctx, s.layout.ReferrerLinkKey(repo, m.Subject.Digest, d)); err != nil {
			return err
		}
	}
	return s.deletePrefix(ctx, s.layout.RevisionLinkKey(repo, d))
}

// UnlinkBlob deletes the repository's layer link for the blob.
func (s *LayoutSink) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := s.check(repo, d); err != nil {
		return err
	}
	return s.deletePrefix(ctx, s.layout.LayerLinkKey(repo, d))
}

// Referrers returns the manifests of repo whose subject is d, read from
// the referrers index PutManifest writes (see ReferrerLinkKey): one link
// per referrer under <repo>/_manifests/referrers/<alg>/<subject hex>/.
func (s *LayoutSink) Referrers(ctx context.Context, repo string, d digest.Digest) ([]ocispec.Descriptor, error) {
	if err := s.check(repo, d); err != nil {
		return nil, err
	}
	r := s.reader()
	ds, err := r.readLinkDir(ctx, s.layout.ReferrersPrefix(repo, d), "referrer")
	if err != nil {
		return nil, err
	}
	out := make([]ocispec.Descriptor, 0, len(ds))
	for _, rd := range ds {
		m, err := r.Manifest(ctx, rd)
		if err != nil {
			return nil, err
		}
		out = append(out, m.Descriptor())
	}
	return out, nil
}

func (s *LayoutSink) reader() *LayoutReader {
	return &LayoutReader{b: s.b, layout: s.layout, retry: s.retry, concurrency: defaultWalkConcurrency, name: "destination bucket"}
}

// deletePrefix deletes every object under prefix.
func (s *LayoutSink) deletePrefix(ctx context.Context, prefix string) error {
	for o, err := range ListAll(ctx, s.b, ListOptions{Prefix: prefix}) {
		if err != nil {
			return fmt.Errorf("listing %q: %w", prefix, err)
		}
		_, err = s.retry.do(ctx, "write", func(ctx context.Context) error {
			err := s.b.Delete(ctx, o.Key)
			if isNotExist(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("deleting %q: %w", o.Key, err)
		}
	}
	return nil
}
