package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// craft writes hand-made layout content for bad-input tests.
type craft struct {
	t *testing.T
	b transfer.Bucket
	l transfer.Layout
}

func (c craft) put(key string, data []byte) {
	c.t.Helper()
	if err := transfertest.WriteObject(context.Background(), c.b, key, data); err != nil {
		c.t.Fatal(err)
	}
}

func (c craft) blob(data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	c.put(c.l.BlobKey(d), data)
	return ocispec.Descriptor{MediaType: transfertest.MediaTypeDockerLayer, Digest: d, Size: int64(len(data))}
}

// image stores a valid image manifest with its blobs and links in repo
// and returns the manifest's descriptor.
func (c craft) image(repo, seed string) ocispec.Descriptor {
	cfg := c.blob([]byte(`{"config":"` + seed + `"}`))
	layer := c.blob([]byte("layer of " + seed))
	return c.manifest(repo, transfertest.ImageManifest(transfer.MediaTypeDockerManifest, cfg, layer), cfg, layer)
}

func (c craft) manifest(repo string, payload []byte, linked ...ocispec.Descriptor) ocispec.Descriptor {
	m := c.blob(payload)
	c.put(c.l.RevisionLinkKey(repo, m.Digest), []byte(m.Digest))
	for _, d := range linked {
		c.put(c.l.LayerLinkKey(repo, d.Digest), []byte(d.Digest))
	}
	return ocispec.Descriptor{MediaType: transfer.MediaTypeDockerManifest, Digest: m.Digest, Size: m.Size}
}

func (c craft) tag(repo, tag string, content string) {
	c.put(c.l.TagCurrentLinkKey(repo, tag), []byte(content))
}

type badCase struct {
	repo  string
	want  error
	setup func(c craft, repo string)
}

// badCases each build one broken repository. Every repository also holds a
// valid tagged image, so the failure is the bad part alone.
func badCases() []badCase {
	return []badCase{
		{"bad/link-garbage", transfer.ErrBadLink, func(c craft, r string) { c.tag(r, "v1", "garbage\n") }},
		{"bad/link-short-digest", transfer.ErrInvalidDigest, func(c craft, r string) { c.tag(r, "v1", "sha256:1234") }},
		{"bad/link-wrong-algorithm", transfer.ErrBadLink, func(c craft, r string) {
			c.tag(r, "v1", "md5:"+strings.Repeat("a", 32))
		}},
		{"bad/tag-without-current", transfer.ErrBadLink, func(c craft, r string) {
			m := c.image(r, "x")
			c.put(c.l.TagIndexLinkKey(r, "v1", m.Digest), []byte(m.Digest))
		}},
		{"bad/tag-name", transfer.ErrInvalidName, func(c craft, r string) {
			m := c.image(r, "x")
			c.tag(r, ".hidden", string(m.Digest))
		}},
		{"bad/unparsable-manifest", transfer.ErrBadManifest, func(c craft, r string) {
			m := c.manifest(r, []byte("{this is not json"))
			c.tag(r, "v1", string(m.Digest))
		}},
		{"bad/schema1-manifest", transfer.ErrBadManifest, func(c craft, r string) {
			m := c.manifest(r, []byte(`{"schemaVersion":1,"name":"x","fsLayers":[{"blobSum":"sha256:`+strings.Repeat("0", 64)+`"}]}`))
			c.tag(r, "v1", string(m.Digest))
		}},
		{"bad/manifest-not-matching-digest", transfer.ErrCorrupt, func(c craft, r string) {
			good := transfertest.ImageManifest(transfer.MediaTypeDockerManifest, c.blob([]byte("cfg")), c.blob([]byte("l")))
			d := digest.FromBytes(good)
			c.put(c.l.BlobKey(d), append(good, ' '))
			c.put(c.l.RevisionLinkKey(r, d), []byte(d))
			c.tag(r, "v1", string(d))
		}},
		{"bad/missing-manifest", transfer.ErrMissingBlob, func(c craft, r string) {
			c.tag(r, "v1", string(digest.FromBytes([]byte("never stored"))))
		}},
		{"bad/missing-layer", transfer.ErrMissingBlob, func(c craft, r string) {
			ghost := ocispec.Descriptor{MediaType: transfertest.MediaTypeDockerLayer, Digest: digest.FromBytes([]byte("ghost")), Size: 5}
			m := c.manifest(r, transfertest.ImageManifest(transfer.MediaTypeDockerManifest, c.blob([]byte("cfg2")), ghost))
			c.tag(r, "v1", string(m.Digest))
		}},
		{"bad/missing-index-child", transfer.ErrMissingBlob, func(c craft, r string) {
			ghost := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes([]byte("ghost manifest")), Size: 14}
			m := c.manifest(r, transfertest.IndexManifest(ocispec.MediaTypeImageIndex, c.image(r, "child"), ghost))
			c.tag(r, "v1", string(m.Digest))
		}},
		{"bad/layer-size-mismatch", transfer.ErrCorrupt, func(c craft, r string) {
			l := c.blob([]byte("twelve bytes"))
			l.Size = 13
			m := c.manifest(r, transfertest.ImageManifest(transfer.MediaTypeDockerManifest, c.blob([]byte("cfg3")), l))
			c.tag(r, "v1", string(m.Digest))
		}},
		{"bad/revision-dir-not-hex", transfer.ErrInvalidPath, func(c craft, r string) {
			c.put(c.l.RevisionsPrefix(r)+"sha256/not-a-digest/link", []byte(digest.FromBytes(nil)))
		}},
		{"bad/revision-dir-unknown-algorithm", transfer.ErrInvalidPath, func(c craft, r string) {
			c.put(c.l.RevisionsPrefix(r)+"md5/"+strings.Repeat("a", 32)+"/link", []byte("md5:"+strings.Repeat("a", 32)))
		}},
		{"bad/revision-link-mismatch", transfer.ErrBadLink, func(c craft, r string) {
			m := c.image(r, "y")
			c.put(c.l.RevisionLinkKey(r, m.Digest), []byte(digest.FromBytes([]byte("other"))))
		}},
		{"bad/layer-link-to-missing-blob", transfer.ErrMissingBlob, func(c craft, r string) {
			d := digest.FromBytes([]byte("gone"))
			c.put(c.l.LayerLinkKey(r, d), []byte(d))
		}},
		{"bad/../escape", transfer.ErrInvalidName, func(c craft, r string) {}},
	}
}

func buildBadLayout(t *testing.T, src transfer.Bucket) (*transfertest.Registry, []badCase) {
	reg := generate(t, src, transfertest.SmallSpec(8))
	c := craft{t: t, b: src, l: reg.Layout}
	cases := badCases()
	for _, bc := range cases {
		good := c.image(bc.repo, "good-"+bc.repo)
		c.tag(bc.repo, "good", string(good.Digest))
		bc.setup(c, bc.repo)
	}
	return reg, cases
}

func TestImportReportsBadInputPerRepository(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg, cases := buildBadLayout(t, src)
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink,
		transfer.ImportOptions{IncludeUntagged: true, IncludeOrphanLayers: true, ContinueOnError: true})
	rep, err := im.Import(ctx)
	if err == nil {
		t.Fatal("Import of a layout with bad repositories returned no error")
	}
	byName := map[string]transfer.RepositoryReport{}
	for _, rr := range rep.Repositories {
		byName[rr.Name] = rr
	}
	state := sink.State()
	for _, bc := range cases {
		rr, ok := byName[bc.repo]
		switch {
		case !ok:
			t.Errorf("%s: not in the report", bc.repo)
		case !errors.Is(rr.Err, bc.want):
			t.Errorf("%s: error = %v, want %v", bc.repo, rr.Err, bc.want)
		case !strings.Contains(rr.Err.Error(), fmt.Sprintf("%q", bc.repo)):
			t.Errorf("%s: error does not name the repository: %v", bc.repo, rr.Err)
		case !errors.Is(err, bc.want):
			t.Errorf("%s: the joined error lacks %v", bc.repo, bc.want)
		default:
			t.Logf("%s: %v", bc.repo, rr.Err)
		}
		if _, ok := state[bc.repo]; ok {
			t.Errorf("%s: bad repository was partly imported: %+v", bc.repo, state[bc.repo])
		}
	}
	if got, want := len(rep.Failed()), len(cases); got != want {
		t.Errorf("%d repositories failed, want %d", got, want)
	}
	// Every good repository is complete, and only its blobs were copied.
	want := reg.Expect(transfertest.ExpectOptions{IncludeUntagged: true, IncludeOrphanLayers: true, Pass: transfer.FinalImport})
	requireState(t, want, state)
	requireDestinationBlobs(t, dst, reg.Layout, wantBlobs(want))
}

func TestImportStopsAtFirstFailureByDefault(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	_, _ = buildBadLayout(t, src)
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{RepositoryConcurrency: 1})
	rep, err := im.Import(ctx)
	var re *transfer.RepositoryError
	if !errors.As(err, &re) || !strings.HasPrefix(re.Repository, "bad/") {
		t.Fatalf("err = %v, want the first bad repository's *RepositoryError", err)
	}
	// Repositories sort "bad/..." first, so nothing else was imported.
	if n := len(sink.State()); n != 0 {
		t.Fatalf("%d repositories imported after the first failure", n)
	}
	notStarted := 0
	for _, rr := range rep.Repositories {
		if rr.Err != nil && strings.Contains(rr.Err.Error(), "not started") {
			notStarted++
		}
	}
	if notStarted == 0 {
		t.Fatal("no repository was reported as not started")
	}
	if _, err := transfertest.CheckBlobs(ctx, dst, mustLayout(t, "")); err != nil {
		t.Fatal(err)
	}
}

func TestParseManifestKinds(t *testing.T) {
	cfg := ocispec.Descriptor{MediaType: transfertest.MediaTypeOCIConfig, Digest: digest.FromBytes([]byte("c")), Size: 1}
	lay := ocispec.Descriptor{MediaType: transfertest.MediaTypeOCILayer, Digest: digest.FromBytes([]byte("l")), Size: 1}
	img := transfertest.ImageManifest(ocispec.MediaTypeImageManifest, cfg, lay)
	child := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(img), Size: int64(len(img))}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
		err     error
	}{
		{"docker", transfertest.ImageManifest(transfer.MediaTypeDockerManifest, cfg, lay), transfer.MediaTypeDockerManifest, nil},
		{"oci", img, ocispec.MediaTypeImageManifest, nil},
		{"docker-list", transfertest.IndexManifest(transfer.MediaTypeDockerManifestList, child), transfer.MediaTypeDockerManifestList, nil},
		{"oci-index", transfertest.IndexManifest(ocispec.MediaTypeImageIndex, child), ocispec.MediaTypeImageIndex, nil},
		{"oci-no-mediatype-manifest", []byte(`{"schemaVersion":2,"config":{"digest":"` + string(cfg.Digest) + `","size":1},"layers":[]}`), ocispec.MediaTypeImageManifest, nil},
		{"oci-no-mediatype-index", []byte(`{"schemaVersion":2,"manifests":[]}`), ocispec.MediaTypeImageIndex, nil},
		{"unknown-mediatype", []byte(`{"schemaVersion":2,"mediaType":"text/plain"}`), "", transfer.ErrBadManifest},
		{"no-schema", []byte(`{"mediaType":"` + ocispec.MediaTypeImageManifest + `"}`), "", transfer.ErrBadManifest},
		{"bad-layer-digest", []byte(`{"schemaVersion":2,"config":{"digest":"` + string(cfg.Digest) + `","size":1},"layers":[{"digest":"sha256:zz","size":1}]}`), "", transfer.ErrInvalidDigest},
		{"negative-size", []byte(`{"schemaVersion":2,"config":{"digest":"` + string(cfg.Digest) + `","size":-1}}`), "", transfer.ErrBadManifest},
		{"index-with-layers", []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[],"layers":[]}`), "", transfer.ErrBadManifest},
		{"not-json", []byte(`<xml/>`), "", transfer.ErrBadManifest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := transfer.ParseManifest(digest.FromBytes(tc.payload), tc.payload)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || m.MediaType != tc.want {
				t.Fatalf("ParseManifest = %+v, %v; want media type %s", m, err, tc.want)
			}
		})
	}
	if _, err := transfer.ParseManifest(digest.FromBytes([]byte("x")), img); !errors.Is(err, transfer.ErrCorrupt) {
		t.Fatalf("digest mismatch: err = %v, want ErrCorrupt", err)
	}
}
