package harness

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
)

// LatencySink delays every call of the Sink it wraps by a fixed round
// trip, as a metadata database on the network would. In the seed's import
// the destination registry kept metadata in PostgreSQL next to the
// importer, so the object store's latency did not apply to it.
type LatencySink struct {
	next    transfer.Sink
	latency time.Duration
}

var _ transfer.Sink = (*LatencySink)(nil)

// NewLatencySink wraps next; latency 0 adds nothing.
func NewLatencySink(next transfer.Sink, latency time.Duration) *LatencySink {
	return &LatencySink{next: next, latency: latency}
}

// CreateRepository implements transfer.Sink.
func (s *LatencySink) CreateRepository(ctx context.Context, repo string) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.CreateRepository(ctx, repo)
}

// LinkBlob implements transfer.Sink.
func (s *LatencySink) LinkBlob(ctx context.Context, repo string, b ocispec.Descriptor) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.LinkBlob(ctx, repo, b)
}

// HasManifest implements transfer.Sink.
func (s *LatencySink) HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	if err := sleep(ctx, s.latency); err != nil {
		return false, err
	}
	return s.next.HasManifest(ctx, repo, d)
}

// PutManifest implements transfer.Sink.
func (s *LatencySink) PutManifest(ctx context.Context, repo string, m *transfer.Manifest) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.PutManifest(ctx, repo, m)
}

// Tag implements transfer.Sink.
func (s *LatencySink) Tag(ctx context.Context, repo, tag string, d digest.Digest) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.Tag(ctx, repo, tag, d)
}

// Tags implements transfer.Sink.
func (s *LatencySink) Tags(ctx context.Context, repo string) (map[string]digest.Digest, error) {
	if err := sleep(ctx, s.latency); err != nil {
		return nil, err
	}
	return s.next.Tags(ctx, repo)
}

// Untag implements transfer.Sink.
func (s *LatencySink) Untag(ctx context.Context, repo, tag string) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.Untag(ctx, repo, tag)
}

// Manifests implements transfer.Sink.
func (s *LatencySink) Manifests(ctx context.Context, repo string) ([]digest.Digest, error) {
	if err := sleep(ctx, s.latency); err != nil {
		return nil, err
	}
	return s.next.Manifests(ctx, repo)
}

// Blobs implements transfer.Sink.
func (s *LatencySink) Blobs(ctx context.Context, repo string) ([]digest.Digest, error) {
	if err := sleep(ctx, s.latency); err != nil {
		return nil, err
	}
	return s.next.Blobs(ctx, repo)
}

// DeleteManifest implements transfer.Sink.
func (s *LatencySink) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.DeleteManifest(ctx, repo, d)
}

// UnlinkBlob implements transfer.Sink.
func (s *LatencySink) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	return s.next.UnlinkBlob(ctx, repo, d)
}
