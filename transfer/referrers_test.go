package transfer_test

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// supplyChain is a repository with everything registries serve around an
// image: a referrer chain (a signature of an SBOM of an image), referrers
// of an index and of an index child, a buildx attestation inside the index,
// a dangling referrer (of an untagged image), cosign tags and a referrers
// fallback tag.
type supplyChain struct {
	image, index, child, attestation, untagged          ocispec.Descriptor
	sbom, sig, indexRef, childRef, dangling, cosign, fb ocispec.Descriptor
}

const scRepo = "team/app"

func buildSupplyChain(t *testing.T, b transfer.Bucket) supplyChain {
	t.Helper()
	c := craft{t: t, b: b, l: mustLayout(t, "")}
	var sc supplyChain
	empty := c.blob(transfertest.EmptyJSON)
	oci := func(seed string) ocispec.Descriptor {
		cfg := c.blob([]byte(`{"config":"` + seed + `"}`))
		layer := c.blob([]byte("layer of " + seed))
		d := c.manifest(scRepo, transfertest.ImageManifest(ocispec.MediaTypeImageManifest, cfg, layer), cfg, layer)
		d.MediaType = ocispec.MediaTypeImageManifest
		return d
	}
	referrer := func(artifactType string, subject ocispec.Descriptor, content string) ocispec.Descriptor {
		blob := c.blob([]byte(content))
		blob.MediaType = artifactType
		d := c.manifest(scRepo, transfertest.ReferrerManifest(artifactType, subject, blob), empty, blob)
		d.MediaType = ocispec.MediaTypeImageManifest
		return d
	}
	sc.image = oci("image")
	sc.child = oci("child-amd64")
	other := oci("child-arm64")
	sc.attestation = oci("buildx attestation")
	idx := transfertest.IndexManifest(ocispec.MediaTypeImageIndex, sc.child, other, sc.attestation)
	sc.index = c.manifest(scRepo, idx)
	sc.index.MediaType = ocispec.MediaTypeImageIndex
	sc.untagged = oci("old build")

	sc.sbom = referrer("application/spdx+json", sc.image, `{"spdxVersion":"SPDX-2.3"}`)
	sc.sig = referrer("application/vnd.dev.cosign.artifact.sig.v1+json", sc.sbom, "signature of the sbom")
	sc.indexRef = referrer("application/vnd.in-toto+json", sc.index, "provenance of the index")
	sc.childRef = referrer("application/vnd.cyclonedx+json", sc.child, "cyclonedx of amd64")
	sc.dangling = referrer("application/spdx+json", sc.untagged, "sbom of an old build")
	sc.cosign = oci("cosign legacy signature")
	sc.fb = c.manifest(scRepo, transfertest.IndexManifest(ocispec.MediaTypeImageIndex, sc.sbom))
	sc.fb.MediaType = ocispec.MediaTypeImageIndex

	now := time.Now()
	for i, tag := range []struct {
		name string
		d    digest.Digest
	}{
		{"v0.9.0", sc.index.Digest},
		{"v1.0.0", sc.image.Digest},
		{"sha256-" + sc.image.Digest.Encoded() + ".sig", sc.cosign.Digest},
		{"sha256-" + sc.image.Digest.Encoded(), sc.fb.Digest},
	} {
		c.tag(scRepo, tag.name, string(tag.d))
		c.put(c.l.TagIndexLinkKey(scRepo, tag.name, tag.d), []byte(tag.d))
		_ = now.Add(time.Duration(i))
	}
	return sc
}

func digestsOf(ds ...ocispec.Descriptor) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

func TestImportFollowsReferrers(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	sc := buildSupplyChain(t, src)
	l := mustLayout(t, "")
	childOther := func(s transfertest.State) []digest.Digest { return s[scRepo].Manifests }

	// run imports in two passes and returns the pre-import's report.
	run := func(t *testing.T, sink transfer.Sink, opts transfer.ImportOptions) (*transfer.Report, transfertest.State) {
		t.Helper()
		dst := memBucket(t)
		im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, opts)
		rep, err := im.PreImport(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := im.Import(ctx); err != nil {
			t.Fatal(err)
		}
		if ms, ok := sink.(*transfertest.MemSink); ok {
			return rep, ms.State()
		}
		return rep, nil
	}

	t.Run("default", func(t *testing.T) {
		sink := transfertest.NewMemSink()
		rep, st := run(t, sink, transfer.ImportOptions{})
		got := childOther(st)
		for _, want := range []ocispec.Descriptor{sc.image, sc.index, sc.child, sc.attestation, sc.sbom, sc.sig, sc.indexRef, sc.childRef, sc.cosign, sc.fb} {
			if !slices.Contains(got, want.Digest) {
				t.Errorf("manifest %s missing from the sink", want.Digest)
			}
		}
		for _, not := range []ocispec.Descriptor{sc.untagged, sc.dangling} {
			if slices.Contains(got, not.Digest) {
				t.Errorf("manifest %s (untagged, or a referrer of an untagged image) imported by default", not.Digest)
			}
		}
		// The SBOM is reached as a child of the fallback index tag; the
		// signature of it and the index and child referrers only by subject.
		if n := rep.Repositories[0].Referrers; n != 3 {
			t.Errorf("Referrers = %d, want 3", n)
		}
		if len(st[scRepo].Tags) != 4 {
			t.Errorf("tags = %v, want all four", st[scRepo].Tags)
		}
		for subject, want := range map[digest.Digest][]digest.Digest{
			sc.image.Digest: digestsOf(sc.sbom), sc.sbom.Digest: digestsOf(sc.sig),
			sc.index.Digest: digestsOf(sc.indexRef), sc.child.Digest: digestsOf(sc.childRef), sc.cosign.Digest: nil,
		} {
			refs, err := sink.Referrers(ctx, scRepo, subject)
			if err != nil {
				t.Fatal(err)
			}
			if got := digestsOf(refs...); !slices.Equal(got, want) {
				t.Errorf("Referrers(%s) = %v, want %v", subject, got, want)
			}
			for _, r := range refs {
				if r.ArtifactType == "" || r.Size == 0 || r.Annotations == nil {
					t.Errorf("referrer descriptor lacks artifactType, size or annotations: %+v", r)
				}
			}
		}
	})

	t.Run("layout sink serves the same referrers", func(t *testing.T) {
		dst := memBucket(t)
		sink := transfer.NewLayoutSink(dst, l, fastRetry)
		im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{})
		if _, err := im.Import(ctx); err != nil {
			t.Fatal(err)
		}
		for subject, want := range map[digest.Digest][]digest.Digest{
			sc.image.Digest: digestsOf(sc.sbom), sc.sbom.Digest: digestsOf(sc.sig), sc.child.Digest: digestsOf(sc.childRef),
		} {
			refs, err := sink.Referrers(ctx, scRepo, subject)
			if err != nil {
				t.Fatal(err)
			}
			if got := digestsOf(refs...); !slices.Equal(got, want) {
				t.Errorf("LayoutSink.Referrers(%s) = %v, want %v", subject, got, want)
			}
		}
	})

	t.Run("untagged brings dangling referrers", func(t *testing.T) {
		_, st := run(t, transfertest.NewMemSink(), transfer.ImportOptions{IncludeUntagged: true})
		if got := childOther(st); !slices.Contains(got, sc.dangling.Digest) || !slices.Contains(got, sc.untagged.Digest) {
			t.Fatalf("IncludeUntagged: dangling referrer or its subject missing: %v", got)
		}
	})

	t.Run("policy keeps companion tags of selected images only", func(t *testing.T) {
		_, st := run(t, transfertest.NewMemSink(), transfer.ImportOptions{Tags: transfer.NewestSemver(1)})
		var tags []string
		for name := range st[scRepo].Tags {
			tags = append(tags, name)
		}
		slices.Sort(tags)
		want := []string{"sha256-" + sc.image.Digest.Encoded(), "sha256-" + sc.image.Digest.Encoded() + ".sig", "v1.0.0"}
		if !slices.Equal(tags, want) {
			t.Fatalf("tags = %v, want %v", tags, want)
		}
		got := childOther(st)
		if slices.Contains(got, sc.indexRef.Digest) || slices.Contains(got, sc.childRef.Digest) || !slices.Contains(got, sc.sig.Digest) {
			t.Fatalf("manifests = %v: want the image's referrers and not the dropped index's", got)
		}
	})

	t.Run("SkipReferrers", func(t *testing.T) {
		_, st := run(t, transfertest.NewMemSink(), transfer.ImportOptions{SkipReferrers: true, Tags: transfer.MatchingTags(regexp.MustCompile(`^v`), 0)})
		got := childOther(st)
		if slices.Contains(got, sc.sbom.Digest) || slices.Contains(got, sc.sig.Digest) || slices.Contains(got, sc.cosign.Digest) {
			t.Fatalf("referrers imported with SkipReferrers: %v", got)
		}
	})
}
