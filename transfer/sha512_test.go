package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// sha512Craft stores blobs addressed by sha512 digests, as a registry
// configured for sha512 writes them.
func (c craft) sha512Blob(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.SHA512.FromBytes(data)
	c.put(c.l.BlobKey(d), data)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func TestSHA512DigestsEndToEnd(t *testing.T) {
	ctx := context.Background()
	src, dst := fileBucket(t, t.TempDir()), fileBucket(t, t.TempDir())
	l := mustLayout(t, "")
	c := craft{t: t, b: src, l: l}
	const repo = "team/sha512"
	cfg := c.sha512Blob(transfertest.MediaTypeOCIConfig, []byte(`{"architecture":"amd64"}`))
	layer := c.sha512Blob(transfertest.MediaTypeOCILayer, transfertest.RandomBytes(512, 3<<20+5))
	img := c.sha512Blob(ocispec.MediaTypeImageManifest, transfertest.ImageManifest(ocispec.MediaTypeImageManifest, cfg, layer))
	idx := c.sha512Blob(ocispec.MediaTypeImageIndex, transfertest.IndexManifest(ocispec.MediaTypeImageIndex, img))
	for _, d := range []ocispec.Descriptor{img, idx} {
		c.put(l.RevisionLinkKey(repo, d.Digest), []byte(d.Digest))
	}
	for _, d := range []ocispec.Descriptor{cfg, layer} {
		c.put(l.LayerLinkKey(repo, d.Digest), []byte(d.Digest))
	}
	c.tag(repo, "v1", string(idx.Digest))
	if !strings.Contains(l.BlobKey(layer.Digest), "/blobs/sha512/") || !strings.Contains(l.RevisionLinkKey(repo, img.Digest), "/revisions/sha512/") {
		t.Fatalf("sha512 keys not under sha512 directories: %s, %s", l.BlobKey(layer.Digest), l.RevisionLinkKey(repo, img.Digest))
	}

	tr := mustNew(t, src, dst, transfer.Options{BufferSize: 1 << 20})
	sink := transfer.NewLayoutSink(dst, l, transfer.RetryPolicy{})
	im := newImporter(t, src, tr, sink, transfer.ImportOptions{})
	rep, err := im.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Manifests != 2 || rep.BlobsCopied != 2 {
		t.Fatalf("report: %s", rep.Summary())
	}
	want, err := transfertest.ReadLayoutState(ctx, src, l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := transfertest.ReadLayoutState(ctx, dst, l)
	if err != nil {
		t.Fatal(err)
	}
	requireState(t, want, got)
	if n, err := transfertest.CheckBlobs(ctx, dst, l); err != nil || n != 4 {
		t.Fatalf("CheckBlobs = %d, %v; want 4 verified sha512 blobs", n, err)
	}

	// A same-length corruption of a sha512 blob is caught with sha512.
	data, err := transfertest.ReadObject(ctx, src, l.BlobKey(layer.Digest))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x10
	d2 := digest.SHA512.FromBytes(append(bytes.Clone(data), 'x'))
	if err := transfertest.WriteObject(ctx, src, l.BlobKey(d2), append(bad, 'x')); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Transfer(ctx, d2); !errors.Is(err, transfer.ErrCorrupt) || !strings.Contains(err.Error(), string(d2)) {
		t.Fatalf("corrupt sha512 blob: err = %v, want ErrCorrupt naming the digest", err)
	}
	if ok, _ := transfertest.Exists(ctx, dst, l.BlobKey(d2)); ok {
		t.Fatal("corrupt sha512 blob landed")
	}
}

func TestParseManifestSHA512AndOCI11Fields(t *testing.T) {
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA512.FromString("image"), Size: 5}
	payload := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"artifactType":"application/spdx+json",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + string(digest.FromString("{}")) + `","size":2},` +
		`"layers":[{"mediaType":"application/spdx+json","digest":"` + string(digest.FromString("sbom")) + `","size":4,"annotations":{"org.opencontainers.image.title":"sbom.json"}}],` +
		`"subject":{"mediaType":"` + subject.MediaType + `","digest":"` + string(subject.Digest) + `","size":5},` +
		`"annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}`)
	d := digest.SHA512.FromBytes(payload)
	m, err := transfer.ParseManifest(d, payload)
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != "application/spdx+json" || m.Subject == nil || m.Subject.Digest != subject.Digest ||
		m.Annotations["org.opencontainers.image.created"] == "" || m.Layers[0].Annotations["org.opencontainers.image.title"] != "sbom.json" {
		t.Fatalf("parsed %+v", m)
	}
	if desc := m.Descriptor(); desc.ArtifactType != "application/spdx+json" || desc.Digest != d || desc.Size != int64(len(payload)) {
		t.Fatalf("Descriptor() = %+v", desc)
	}
	// A payload checked against another sha512 digest is refused.
	if _, err := transfer.ParseManifest(digest.SHA512.FromString("other"), payload); !errors.Is(err, transfer.ErrCorrupt) {
		t.Fatalf("mismatching sha512: err = %v, want ErrCorrupt", err)
	}
}
