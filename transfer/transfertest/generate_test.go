package transfertest_test

import (
	"context"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestGenerateIsDeterministicAndMatchesTheBucket(t *testing.T) {
	ctx := context.Background()
	var regs []*transfertest.Registry
	var states []transfertest.State
	for range 2 {
		b := transfertest.NewMemBucket()
		reg, err := transfertest.Generate(ctx, b, transfertest.SmallSpec(42))
		if err != nil {
			t.Fatal(err)
		}
		st, err := transfertest.ReadLayoutState(ctx, b, reg.Layout)
		if err != nil {
			t.Fatal(err)
		}
		n, err := transfertest.CheckBlobs(ctx, b, reg.Layout)
		if err != nil || n != len(reg.Blobs) {
			t.Fatalf("CheckBlobs = %d, %v; want %d blobs", n, err, len(reg.Blobs))
		}
		regs = append(regs, reg)
		states = append(states, st)
	}
	if d := transfertest.Diff(states[0], states[1]); d != "" {
		t.Fatalf("same seed, different layouts:\n%s", d)
	}
	// What the bucket holds is what the Registry says.
	want := regs[0].Expect(transfertest.ExpectOptions{IncludeUntagged: true, IncludeOrphanLayers: true, Pass: transfer.FinalImport})
	if d := transfertest.Diff(want, states[0]); d != "" {
		t.Fatalf("layout differs from the Registry description:\n%s", d)
	}
	// The small spec has the features the importer tests rely on.
	var nested, indexes, untagged, oci, manyTags bool
	tagged := map[digest.Digest]bool{}
	for _, r := range regs[0].Repositories {
		for _, o := range regs[0].Repositories {
			if o.Name != r.Name && len(o.Name) > len(r.Name) && o.Name[:len(r.Name)+1] == r.Name+"/" {
				nested = true
			}
		}
		for _, tg := range r.Tags {
			tagged[tg.Digest] = true
		}
		for _, m := range r.Manifests {
			indexes = indexes || len(m.Children) > 0
			oci = oci || m.MediaType == ocispec.MediaTypeImageManifest
		}
		manyTags = manyTags || len(r.Tags) >= 15
	}
	for _, r := range regs[0].Repositories {
		for _, m := range r.Manifests {
			if !tagged[m.Digest] && len(m.Children) == 0 {
				untagged = true
			}
		}
	}
	if !nested || !indexes || !untagged || !oci || !manyTags {
		t.Fatalf("small spec lacks a feature: nested=%v indexes=%v untagged=%v oci=%v manyTags=%v", nested, indexes, untagged, oci, manyTags)
	}
	tags, mans, blobs, bytes := regs[0].Counts()
	t.Logf("small registry: %d repositories, %d tags, %d manifests, %d blobs, %s", len(regs[0].Repositories), tags, mans, blobs, transfer.FormatBytes(bytes))
}
