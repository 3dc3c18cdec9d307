package transfertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/transfer"
)

// Spec describes a synthetic registry for Generate. Every field is used as
// given; start from SmallSpec or SeedScaleSpec and adjust.
type Spec struct {
	// Seed makes the registry reproducible: the same Spec always yields
	// the same repositories, manifests, tags and blob bytes.
	Seed uint64
	// Root is the layout root ("" means transfer.DefaultRoot).
	Root string

	// Repositories is how many repositories to create.
	Repositories int
	// NestedFraction of repositories live under another repository's
	// path ("group/app" and "group/app/cache").
	NestedFraction float64
	// Images is the number of top-level images (tagged or not) across all
	// repositories. Each repository gets at least one.
	Images int
	// ZipfExponent skews images per repository: with 1, the largest
	// repository holds about 1/H(n) of all images and most hold a few.
	ZipfExponent float64
	// UntaggedFraction of images carry no tag (older builds). The newest
	// image of every repository is always tagged.
	UntaggedFraction float64
	// IndexFraction of tagged images are multi-arch indexes of 2-3 images.
	IndexFraction float64
	// OCIFraction of repositories use OCI media types instead of Docker's.
	OCIFraction float64
	// TagsPerImage is the mean number of tags on a tagged image (>= 1).
	TagsPerImage float64

	// BaseImages is the pool of shared base images (1-3 layers each) that
	// images are built on, so the same layers appear in many repositories.
	BaseImages int
	// MinLayers and MaxLayers bound an image's own layers (on top of its
	// base layers).
	MinLayers, MaxLayers int
	// ReuseFraction is the chance that an image reuses one of the previous
	// image's own layers (an unchanged dependency layer).
	ReuseFraction float64
	// MinBlobSize and MaxBlobSize bound layer sizes, drawn log-uniformly so
	// sizes have a long tail. Configs are 100-1500 bytes.
	MinBlobSize, MaxBlobSize int64
	// DanglingLayers is the number of layer links per repository to blobs
	// that no manifest references (left by interrupted pushes).
	DanglingLayers int

	// Concurrency is how many objects are written at once.
	Concurrency int
}

// SmallSpec is a registry of a few repositories with everything tests need:
// nested repository paths, shared base layers, Docker and OCI images,
// multi-arch indexes, untagged images, one repository with many tags,
// semver, build, "latest" and "master" tags, and dangling layer links.
func SmallSpec(seed uint64) Spec {
	return Spec{
		Seed: seed, Repositories: 7, NestedFraction: 0.3, Images: 45, ZipfExponent: 1.2,
		UntaggedFraction: 0.25, IndexFraction: 0.2, OCIFraction: 0.4, TagsPerImage: 1.4,
		BaseImages: 3, MinLayers: 1, MaxLayers: 3, ReuseFraction: 0.3,
		MinBlobSize: 64, MaxBlobSize: 48 << 10, DanglingLayers: 1, Concurrency: 16,
	}
}

// SeedScaleSpec approximates the registry of the import test the seed
// describes: 258 repositories with a long tail of sizes (the largest has
// thousands of tags, most a few dozen), shared base layers, and, reachable
// from tags, about 28,000 manifests, 36,000 tags and 136,000 distinct blobs,
// with about as much untagged data again (287,000 blobs in all; with seed 1:
// 36,015 tags, 28,163 tagged manifests, 136,284 tagged blobs). Blob sizes are
// scaled down (64 B to 16 KiB, about 640 MiB in all) so the layout fits
// anywhere; raise MaxBlobSize for byte-heavy runs. Generating it writes
// about 600,000 objects (some 40 s into memblob on two cores).
func SeedScaleSpec(seed uint64) Spec {
	return Spec{
		Seed: seed, Repositories: 258, NestedFraction: 0.15, Images: 48_800, ZipfExponent: 1,
		UntaggedFraction: 0.44, IndexFraction: 0.01, OCIFraction: 0.1, TagsPerImage: 1.29,
		BaseImages: 40, MinLayers: 1, MaxLayers: 7, ReuseFraction: 0.2,
		MinBlobSize: 64, MaxBlobSize: 16 << 10, DanglingLayers: 3, Concurrency: 32,
	}
}

func (s Spec) validate() error {
	switch {
	case s.Repositories < 1:
		return errors.New("Repositories must be at least 1")
	case s.Images < s.Repositories:
		return errors.New("Images must be at least Repositories")
	case s.TagsPerImage < 1:
		return errors.New("TagsPerImage must be at least 1")
	case s.BaseImages < 1:
		return errors.New("BaseImages must be at least 1")
	case s.MinLayers < 0 || s.MaxLayers < s.MinLayers:
		return errors.New("need 0 <= MinLayers <= MaxLayers")
	case s.MinBlobSize < 1 || s.MaxBlobSize < s.MinBlobSize:
		return errors.New("need 1 <= MinBlobSize <= MaxBlobSize")
	case s.Concurrency < 1:
		return errors.New("Concurrency must be at least 1")
	}
	return nil
}

// Registry describes what Generate wrote.
type Registry struct {
	Layout transfer.Layout
	// Repositories, sorted by name.
	Repositories []Repository
	// Blobs is every blob data object written (layers, configs and
	// manifests) with its size.
	Blobs map[digest.Digest]int64
}

// Repository is one generated repository.
type Repository struct {
	Name string
	// Tags in the order they were written, oldest first. Tags are written
	// in ascending name order, so the recency order transfer uses
	// (modification time, then name) is the same on every storage driver,
	// even where timestamps are coarse.
	Tags []Tag
	// Manifests are every manifest revision: images, index children and
	// untagged images.
	Manifests []Manifest
	// Layers are the repository's layer links: configs and layers of all
	// its images plus dangling links.
	Layers []digest.Digest
}

// Tag is a generated tag.
type Tag struct {
	Name   string
	Digest digest.Digest
}

// Manifest is a generated manifest.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	Config    digest.Digest   // image manifests
	Layers    []digest.Digest // image manifests
	Children  []digest.Digest // indexes
}

// Repository returns the named repository, or nil.
func (r *Registry) Repository(name string) *Repository {
	for i := range r.Repositories {
		if r.Repositories[i].Name == name {
			return &r.Repositories[i]
		}
	}
	return nil
}

// Counts returns the number of tags, manifest revisions (counted per
// repository) and distinct blobs, and the blobs' total size.
func (r *Registry) Counts() (tags, manifests, blobs int, bytes int64) {
	for _, repo := range r.Repositories {
		tags += len(repo.Tags)
		manifests += len(repo.Manifests)
	}
	for _, n := range r.Blobs {
		bytes += n
	}
	return tags, manifests, len(r.Blobs), bytes
}

// blobPlan is a blob to write; its bytes are regenerated from seed.
type blobPlan struct {
	seed uint64
	size int64
}

type generator struct {
	spec      Spec
	rng       *rand.Rand
	reg       *Registry
	blobs     map[digest.Digest]blobPlan
	manifests map[digest.Digest][]byte
	bases     [][]ocispec.Descriptor
	// tagIndex holds extra tag history entries: repo -> tag -> older digests.
	tagIndex map[string]map[string][]digest.Digest
}

// Generate writes a synthetic distribution registry described by spec
// into b and returns what it wrote. The same spec always produces the same
// registry.
func Generate(ctx context.Context, b transfer.Bucket, spec Spec) (*Registry, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("transfertest.Generate: %w", err)
	}
	layout, err := transfer.NewLayout(spec.Root)
	if err != nil {
		return nil, fmt.Errorf("transfertest.Generate: %w", err)
	}
	g := &generator{
		spec:      spec,
		rng:       rand.New(rand.NewPCG(spec.Seed, 0xfe77)),
		reg:       &Registry{Layout: layout, Blobs: map[digest.Digest]int64{}},
		blobs:     map[digest.Digest]blobPlan{},
		manifests: map[digest.Digest][]byte{},
		tagIndex:  map[string]map[string][]digest.Digest{},
	}
	g.plan()
	if err := g.write(ctx, b); err != nil {
		return nil, fmt.Errorf("transfertest.Generate: %w", err)
	}
	return g.reg, nil
}

func (g *generator) plan() {
	s := g.spec
	for range s.BaseImages {
		var layers []ocispec.Descriptor
		for range 1 + g.rng.IntN(3) {
			layers = append(layers, g.newBlob(MediaTypeDockerLayer, g.layerSize()))
		}
		g.bases = append(g.bases, layers)
	}
	names := g.repositoryNames()
	counts := g.imageCounts(len(names))
	for i, name := range names {
		g.reg.Repositories = append(g.reg.Repositories, g.repository(name, counts[i]))
	}
	slices.SortFunc(g.reg.Repositories, func(a, b Repository) int { return strings.Compare(a.Name, b.Name) })
}

func (g *generator) repositoryNames() []string {
	s := g.spec
	groups := max(1, s.Repositories/8)
	suffixes := []string{"cache", "build", "tools", "docs", "qa"}
	seen := map[string]bool{}
	var names []string
	for i := 0; len(names) < s.Repositories; i++ {
		var name string
		if len(names) > 0 && g.rng.Float64() < s.NestedFraction {
			parent := names[g.rng.IntN(len(names))]
			name = parent + "/" + suffixes[g.rng.IntN(len(suffixes))]
		} else {
			name = fmt.Sprintf("group-%02d/project-%03d", g.rng.IntN(groups), i)
		}
		if !seen[name] && transfer.ValidateRepository(name) == nil {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// imageCounts spreads Images over n repositories with Zipf weights, at
// least one each, largest shares assigned to random repositories.
func (g *generator) imageCounts(n int) []int {
	s := g.spec
	weights := make([]float64, n)
	var total float64
	for k := range weights {
		weights[k] = 1 / math.Pow(float64(k+1), s.ZipfExponent)
		total += weights[k]
	}
	counts := make([]int, n)
	left := s.Images - n
	assigned := 0
	for k := range counts {
		counts[k] = 1 + int(float64(left)*weights[k]/total)
		assigned += counts[k]
	}
	counts[0] += s.Images - assigned
	out := make([]int, n)
	for k, j := range g.rng.Perm(n) {
		out[j] = counts[k]
	}
	return out
}

func (g *generator) layerSize() int64 {
	s := g.spec
	lo, hi := math.Log(float64(s.MinBlobSize)), math.Log(float64(s.MaxBlobSize))
	return int64(math.Exp(lo + g.rng.Float64()*(hi-lo)))
}

func (g *generator) newBlob(mediaType string, size int64) ocispec.Descriptor {
	p := blobPlan{seed: g.rng.Uint64(), size: size}
	d := digestOfPlan(p)
	g.blobs[d] = p
	g.reg.Blobs[d] = size
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: size}
}

// repository generates one repository's images and tags.
func (g *generator) repository(name string, images int) Repository {
	s := g.spec
	repo := Repository{Name: name}
	mt, it := transfer.MediaTypeDockerManifest, transfer.MediaTypeDockerManifestList
	if g.rng.Float64() < s.OCIFraction {
		mt, it = ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex
	}
	layerSet := map[digest.Digest]bool{}
	link := func(ds ...ocispec.Descriptor) {
		for _, d := range ds {
			if !layerSet[d.Digest] {
				layerSet[d.Digest] = true
				repo.Layers = append(repo.Layers, d.Digest)
			}
		}
	}
	base := g.rng.IntN(len(g.bases))
	var prevOwn []ocispec.Descriptor
	image := func() ocispec.Descriptor {
		if g.rng.Float64() < 0.2 {
			base = g.rng.IntN(len(g.bases))
		}
		cfgType, layerType := ConfigAndLayerTypes(mt)
		config := g.newBlob(cfgType, 100+g.rng.Int64N(1400))
		layers := slices.Clone(g.bases[base])
		var own []ocispec.Descriptor
		n := s.MinLayers + g.rng.IntN(s.MaxLayers-s.MinLayers+1)
		if n > 0 && len(prevOwn) > 0 && g.rng.Float64() < s.ReuseFraction {
			own = append(own, prevOwn[g.rng.IntN(len(prevOwn))])
		}
		for len(own) < n {
			own = append(own, g.newBlob(layerType, g.layerSize()))
		}
		if len(own) > 0 {
			prevOwn = own
		}
		layers = append(layers, own...)
		link(config)
		link(layers...)
		payload := ImageManifest(mt, config, layers...)
		m := g.addManifest(&repo, mt, payload)
		m.Config = config.Digest
		for _, l := range layers {
			m.Layers = append(m.Layers, l.Digest)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: m.Digest, Size: m.Size}
	}

	var tagged []digest.Digest
	for j := range images {
		isTagged := j == images-1 || g.rng.Float64() >= s.UntaggedFraction
		var top ocispec.Descriptor
		if isTagged && g.rng.Float64() < s.IndexFraction {
			var children []ocispec.Descriptor
			for range 2 + g.rng.IntN(2) {
				children = append(children, image())
			}
			m := g.addManifest(&repo, it, IndexManifest(it, children...))
			for _, c := range children {
				m.Children = append(m.Children, c.Digest)
			}
			top = ocispec.Descriptor{Digest: m.Digest}
		} else {
			top = image()
		}
		if isTagged {
			tagged = append(tagged, top.Digest)
		}
	}
	for range s.DanglingLayers {
		_, layerType := ConfigAndLayerTypes(mt)
		link(g.newBlob(layerType, g.layerSize()))
	}
	repo.Tags = g.tags(name, tagged)
	return repo
}

// addManifest records a manifest payload as a blob and a revision of repo.
func (g *generator) addManifest(repo *Repository, mediaType string, payload []byte) *Manifest {
	d := digest.FromBytes(payload)
	g.manifests[d] = payload
	g.reg.Blobs[d] = int64(len(payload))
	repo.Manifests = append(repo.Manifests, Manifest{Digest: d, MediaType: mediaType, Size: int64(len(payload))})
	return &repo.Manifests[len(repo.Manifests)-1]
}

// tags names the tagged images (oldest first): semver, build and branch
// tags, "master" on a recent image, and "latest" with some history on the
// newest.
func (g *generator) tags(repo string, tagged []digest.Digest) []Tag {
	var (
		out  []Tag
		seen = map[string]bool{}
		vPre = g.rng.IntN(2) == 0
		ver  = [3]int{0, 1, 0}
		n    int
	)
	add := func(name string, d digest.Digest) {
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, Tag{Name: name, Digest: d})
	}
	extra := 1 - 1/g.spec.TagsPerImage // geometric: mean tags per image = TagsPerImage
	for _, d := range tagged {
		for first := true; first || g.rng.Float64() < extra; first = false {
			n++
			switch r := g.rng.Float64(); {
			case r < 0.35:
				if g.rng.IntN(4) == 0 {
					ver[1], ver[2] = ver[1]+1, 0
				} else {
					ver[2]++
				}
				name := fmt.Sprintf("%d.%d.%d", ver[0], ver[1], ver[2])
				if vPre {
					name = "v" + name
				}
				if g.rng.IntN(8) == 0 {
					name += fmt.Sprintf("-rc.%d", 1+g.rng.IntN(3))
				}
				add(name, d)
			case r < 0.8:
				add(fmt.Sprintf("build-%06d", n), d)
			default:
				branches := []string{"main", "feature-login", "fix-cache", "renovate-deps"}
				add(fmt.Sprintf("%s-%08x", branches[g.rng.IntN(len(branches))], g.rng.Uint32()), d)
			}
		}
	}
	last := tagged[len(tagged)-1]
	add("latest", last)
	if len(tagged) > 1 {
		hist := tagged[max(0, len(tagged)-4) : len(tagged)-1]
		g.tagIndex[repo] = map[string][]digest.Digest{"latest": slices.Clone(hist)}
	}
	if g.rng.IntN(2) == 0 {
		add("master", tagged[max(0, len(tagged)-1-g.rng.IntN(3))])
	}
	slices.SortFunc(out, func(a, b Tag) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// write stores blobs, then each repository's links, then its tags in
// order.
func (g *generator) write(ctx context.Context, b transfer.Bucket) error {
	l := g.reg.Layout
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(g.spec.Concurrency)
	put := func(key string, data []byte) {
		eg.Go(func() error {
			return WriteObject(ectx, b, key, data)
		})
	}
	for _, d := range sortedDigestKeys(g.blobs) {
		p := g.blobs[d]
		eg.Go(func() error {
			return WriteObject(ectx, b, l.BlobKey(d), planBytes(p))
		})
	}
	for _, d := range sortedDigestKeys(g.manifests) {
		put(l.BlobKey(d), g.manifests[d])
	}
	if err := eg.Wait(); err != nil {
		return err
	}

	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(g.spec.Concurrency)
	for _, repo := range g.reg.Repositories {
		eg.Go(func() error {
			w := func(key string, d digest.Digest) error {
				return WriteObject(ectx, b, key, []byte(d))
			}
			for _, d := range repo.Layers {
				if err := w(l.LayerLinkKey(repo.Name, d), d); err != nil {
					return err
				}
			}
			for _, m := range repo.Manifests {
				if err := w(l.RevisionLinkKey(repo.Name, m.Digest), m.Digest); err != nil {
					return err
				}
			}
			for _, t := range repo.Tags {
				for _, old := range g.tagIndex[repo.Name][t.Name] {
					if err := w(l.TagIndexLinkKey(repo.Name, t.Name, old), old); err != nil {
						return err
					}
				}
				if err := w(l.TagIndexLinkKey(repo.Name, t.Name, t.Digest), t.Digest); err != nil {
					return err
				}
				if err := w(l.TagCurrentLinkKey(repo.Name, t.Name), t.Digest); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return eg.Wait()
}

func sortedDigestKeys[V any](m map[digest.Digest]V) []digest.Digest {
	keys := make([]digest.Digest, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// planBytes regenerates a blob's content.
func planBytes(p blobPlan) []byte {
	r := rand.New(rand.NewPCG(p.seed, uint64(p.size)))
	out := make([]byte, p.size)
	for i := 0; i < len(out); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(out); j++ {
			out[i+j] = byte(v >> (8 * j))
		}
	}
	return out
}

func digestOfPlan(p blobPlan) digest.Digest {
	sum := sha256.Sum256(planBytes(p))
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// MustGenerate is Generate for tests: it fails t on error.
func MustGenerate(t testing.TB, b transfer.Bucket, spec Spec) *Registry {
	t.Helper()
	reg, err := Generate(context.Background(), b, spec)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
