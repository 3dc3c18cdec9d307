package transfertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
)

// SinkHarness is what RunSinkTests needs for one test: an empty Sink and a
// way to read back what it holds.
type SinkHarness struct {
	Sink  transfer.Sink
	State func(ctx context.Context) (State, error)
}

// RunSinkTests checks the Sink contract: the import call sequence is
// recorded, every call is idempotent, tags move, are listed and removed,
// manifests and blob links are listed and removed (after their tags,
// indexes before children), nested repositories are independent, bad
// names are rejected, concurrent
// links are safe, and (for a transfer.ReferrersLister) referrers are
// answered with their descriptors.
// Repositories that were created but hold nothing need not appear in the
// State. newHarness is called once per subtest.
func RunSinkTests(t *testing.T, newHarness func(t *testing.T) SinkHarness) {
	t.Helper()
	ctx := context.Background()
	fx := newSinkFixture()

	state := func(t *testing.T, h SinkHarness) State {
		t.Helper()
		s, err := h.State(ctx)
		if err != nil {
			t.Fatalf("reading sink state: %v", err)
		}
		for name, r := range s {
			if len(r.Blobs)+len(r.Manifests)+len(r.Tags) == 0 {
				delete(s, name)
			}
		}
		return s
	}
	check := func(t *testing.T, h SinkHarness, want State) {
		t.Helper()
		if d := Diff(want, state(t, h)); d != "" {
			t.Fatalf("sink state differs:\n%s", d)
		}
	}

	t.Run("ImportSequence", func(t *testing.T) {
		h := newHarness(t)
		fx.load(t, h.Sink, "group/app")
		check(t, h, State{"group/app": fx.want()})
		for _, d := range []digest.Digest{fx.image.Digest, fx.index.Digest} {
			if ok, err := h.Sink.HasManifest(ctx, "group/app", d); err != nil || !ok {
				t.Errorf("HasManifest(%s) = %v, %v; want true", d, ok, err)
			}
		}
		if ok, err := h.Sink.HasManifest(ctx, "group/app", digest.FromBytes([]byte("nope"))); err != nil || ok {
			t.Errorf("HasManifest(unknown) = %v, %v; want false", ok, err)
		}
		if ok, err := h.Sink.HasManifest(ctx, "group/other", fx.image.Digest); err != nil || ok {
			t.Errorf("HasManifest in another repository = %v, %v; want false", ok, err)
		}
	})

	t.Run("Idempotent", func(t *testing.T) {
		h := newHarness(t)
		fx.load(t, h.Sink, "app")
		before := state(t, h)
		fx.load(t, h.Sink, "app")
		if d := Diff(before, state(t, h)); d != "" {
			t.Fatalf("repeating the calls changed the sink:\n%s", d)
		}
	})

	t.Run("TagMoves", func(t *testing.T) {
		h := newHarness(t)
		fx.load(t, h.Sink, "app")
		if err := h.Sink.Tag(ctx, "app", "latest", fx.image.Digest); err != nil {
			t.Fatal(err)
		}
		want := fx.want()
		want.Tags["latest"] = fx.image.Digest
		check(t, h, State{"app": want})
	})

	t.Run("NestedRepositories", func(t *testing.T) {
		h := newHarness(t)
		fx.load(t, h.Sink, "a/b")
		if err := h.Sink.CreateRepository(ctx, "a/b/c"); err != nil {
			t.Fatal(err)
		}
		if err := h.Sink.LinkBlob(ctx, "a/b/c", fx.layer); err != nil {
			t.Fatal(err)
		}
		check(t, h, State{"a/b": fx.want(), "a/b/c": {Blobs: []digest.Digest{fx.layer.Digest}, Tags: map[string]digest.Digest{}}})
	})

	t.Run("TagsAndUntag", func(t *testing.T) {
		h := newHarness(t)
		if tags, err := h.Sink.Tags(ctx, "never/created"); err != nil || len(tags) != 0 {
			t.Fatalf("Tags of an unknown repository = %v, %v; want none", tags, err)
		}
		fx.load(t, h.Sink, "app")
		tags, err := h.Sink.Tags(ctx, "app")
		if err != nil || len(tags) != 2 || tags["latest"] != fx.index.Digest {
			t.Fatalf("Tags = %v, %v", tags, err)
		}
		for range 2 { // idempotent
			if err := h.Sink.Untag(ctx, "app", "latest"); err != nil {
				t.Fatalf("Untag: %v", err)
			}
		}
		want := fx.want()
		delete(want.Tags, "latest")
		check(t, h, State{"app": want})
		if err := h.Sink.Untag(ctx, "app", "../x"); !errors.Is(err, transfer.ErrInvalidName) {
			t.Fatalf("Untag of a bad name: err = %v, want ErrInvalidName", err)
		}
	})

	t.Run("ListAndRemoveContent", func(t *testing.T) {
		h := newHarness(t)
		if ms, err := h.Sink.Manifests(ctx, "never/created"); err != nil || len(ms) != 0 {
			t.Fatalf("Manifests of an unknown repository = %v, %v; want none", ms, err)
		}
		if bs, err := h.Sink.Blobs(ctx, "never/created"); err != nil || len(bs) != 0 {
			t.Fatalf("Blobs of an unknown repository = %v, %v; want none", bs, err)
		}
		fx.load(t, h.Sink, "app")
		want := fx.want()
		ms, err := h.Sink.Manifests(ctx, "app")
		if err != nil || !slices.Equal(sortDigests(ms), want.Manifests) {
			t.Fatalf("Manifests = %v, %v; want %v", ms, err, want.Manifests)
		}
		bs, err := h.Sink.Blobs(ctx, "app")
		if err != nil || !slices.Equal(sortDigests(bs), want.Blobs) {
			t.Fatalf("Blobs = %v, %v; want %v", bs, err, want.Blobs)
		}
		// What a final pass does when the tags are gone: untag, delete
		// the index, then its child, then unlink the blobs; twice.
		for range 2 {
			for _, step := range []func() error{
				func() error { return h.Sink.Untag(ctx, "app", "latest") },
				func() error { return h.Sink.Untag(ctx, "app", "v1.0.0") },
				func() error { return h.Sink.DeleteManifest(ctx, "app", fx.index.Digest) },
				func() error { return h.Sink.DeleteManifest(ctx, "app", fx.image.Digest) },
				func() error { return h.Sink.UnlinkBlob(ctx, "app", fx.layer.Digest) },
			} {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
		}
		check(t, h, State{"app": {Blobs: []digest.Digest{fx.config.Digest}, Tags: map[string]digest.Digest{}}})
		if ok, err := h.Sink.HasManifest(ctx, "app", fx.image.Digest); err != nil || ok {
			t.Fatalf("HasManifest after DeleteManifest = %v, %v; want false", ok, err)
		}
		if err := h.Sink.DeleteManifest(ctx, "../x", fx.image.Digest); !errors.Is(err, transfer.ErrInvalidName) {
			t.Fatalf("DeleteManifest in a bad repository name: err = %v, want ErrInvalidName", err)
		}
	})

	t.Run("Referrers", func(t *testing.T) {
		h := newHarness(t)
		rl, ok := h.Sink.(transfer.ReferrersLister)
		if !ok {
			t.Skip("the Sink does not implement transfer.ReferrersLister")
		}
		fx.load(t, h.Sink, "app")
		empty := ocispec.Descriptor{MediaType: MediaTypeEmptyJSON, Digest: digest.FromBytes(EmptyJSON), Size: 2}
		sbomData := []byte(`{"spdxVersion":"SPDX-2.3"}`)
		sbomBlob := ocispec.Descriptor{MediaType: "application/spdx+json", Digest: digest.FromBytes(sbomData), Size: int64(len(sbomData))}
		subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: fx.index.Digest, Size: int64(len(fx.index.Payload))}
		sbom := mustParse(ReferrerManifest("application/spdx+json", subject, sbomBlob))
		for _, step := range []func() error{
			func() error { return h.Sink.LinkBlob(ctx, "app", empty) },
			func() error { return h.Sink.LinkBlob(ctx, "app", sbomBlob) },
			func() error { return h.Sink.PutManifest(ctx, "app", sbom) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		refs, err := rl.Referrers(ctx, "app", fx.index.Digest)
		if err != nil || len(refs) != 1 {
			t.Fatalf("Referrers = %v, %v; want the sbom", refs, err)
		}
		if r := refs[0]; r.Digest != sbom.Digest || r.ArtifactType != "application/spdx+json" || r.Size != int64(len(sbom.Payload)) || r.MediaType != ocispec.MediaTypeImageManifest || r.Annotations == nil {
			t.Fatalf("referrer descriptor = %+v", r)
		}
		if refs, err := rl.Referrers(ctx, "app", fx.image.Digest); err != nil || len(refs) != 0 {
			t.Fatalf("Referrers of the image = %v, %v; want none", refs, err)
		}
	})

	t.Run("RejectsBadNames", func(t *testing.T) {
		h := newHarness(t)
		for _, name := range []string{"", "../etc", "a/../b", "UPPER", "a//b", "/abs", "_hidden"} {
			if err := h.Sink.CreateRepository(ctx, name); !errors.Is(err, transfer.ErrInvalidName) {
				t.Errorf("CreateRepository(%q): err = %v, want ErrInvalidName", name, err)
			}
		}
		fx.load(t, h.Sink, "app")
		for _, tag := range []string{"", "../x", "a/b", ".hidden", string(make([]byte, 200))} {
			if err := h.Sink.Tag(ctx, "app", tag, fx.image.Digest); !errors.Is(err, transfer.ErrInvalidName) {
				t.Errorf("Tag(%q): err = %v, want ErrInvalidName", tag, err)
			}
		}
	})

	t.Run("ConcurrentLinks", func(t *testing.T) {
		h := newHarness(t)
		if err := h.Sink.CreateRepository(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			errs  []error
			blobs []digest.Digest
		)
		for i := range 32 {
			data := []byte(fmt.Sprintf("blob %d", i))
			d := digest.FromBytes(data)
			blobs = append(blobs, d)
			wg.Go(func() {
				if err := h.Sink.LinkBlob(ctx, "app", ocispec.Descriptor{MediaType: MediaTypeDockerLayer, Digest: d, Size: int64(len(data))}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("concurrent LinkBlob: %v", errors.Join(errs...))
		}
		check(t, h, State{"app": {Blobs: sortDigests(blobs), Tags: map[string]digest.Digest{}}})
	})
}

// sinkFixture is a small image (config + layer), a multi-arch index of it,
// and a tag.
type sinkFixture struct {
	config, layer ocispec.Descriptor
	image, index  *transfer.Manifest
}

func newSinkFixture() *sinkFixture {
	fx := &sinkFixture{}
	cfg, lay := []byte(`{"architecture":"amd64"}`), []byte("layer-bytes")
	fx.config = ocispec.Descriptor{MediaType: MediaTypeOCIConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	fx.layer = ocispec.Descriptor{MediaType: MediaTypeOCILayer, Digest: digest.FromBytes(lay), Size: int64(len(lay))}
	fx.image = mustParse(ImageManifest(ocispec.MediaTypeImageManifest, fx.config, fx.layer))
	fx.index = mustParse(IndexManifest(ocispec.MediaTypeImageIndex,
		ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: fx.image.Digest, Size: int64(len(fx.image.Payload))}))
	return fx
}

func mustParse(payload []byte) *transfer.Manifest {
	m, err := transfer.ParseManifest(digest.FromBytes(payload), payload)
	if err != nil {
		panic(err) // the fixture is built from constants
	}
	return m
}

// load makes the calls an importer would make for the fixture.
func (fx *sinkFixture) load(t *testing.T, s transfer.Sink, repo string) {
	t.Helper()
	ctx := context.Background()
	steps := []func() error{
		func() error { return s.CreateRepository(ctx, repo) },
		func() error { return s.LinkBlob(ctx, repo, fx.config) },
		func() error { return s.LinkBlob(ctx, repo, fx.layer) },
		func() error { return s.PutManifest(ctx, repo, fx.image) },
		func() error { return s.PutManifest(ctx, repo, fx.index) },
		func() error { return s.Tag(ctx, repo, "v1.0.0", fx.index.Digest) },
		func() error { return s.Tag(ctx, repo, "latest", fx.index.Digest) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("sink call %d for %q: %v", i+1, repo, err)
		}
	}
}

func (fx *sinkFixture) want() RepositoryState {
	return RepositoryState{
		Blobs:     sortDigests([]digest.Digest{fx.config.Digest, fx.layer.Digest}),
		Manifests: sortDigests([]digest.Digest{fx.image.Digest, fx.index.Digest}),
		Tags:      map[string]digest.Digest{"v1.0.0": fx.index.Digest, "latest": fx.index.Digest},
	}
}

func sortDigests(ds []digest.Digest) []digest.Digest {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
