package transfertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
)

// VirtualRegistry is a read-only bucket that serves a distribution layout
// of many small repositories without storing it: keys and contents are
// computed from the repository number, so a registry of 500,000
// repositories costs only its digest index (about 100 bytes per blob).
// Repository i is "g<i/1000>/p<i>", with one tag "latest" on an image of
// a config, one of 16 shared base layers and one own layer.
type VirtualRegistry struct {
	n      int
	layout transfer.Layout
	// index maps a blob's digest to what it is: repo<<2 | kind.
	index map[[32]byte]int64
	// manifests holds each repository's manifest digest.
	manifests []digest.Digest
	reads     atomic.Int64
}

const (
	vManifest = iota
	vConfig
	vLayer
	vBase
)

const virtualBases = 16

// NewVirtualRegistry returns a bucket serving n repositories under the
// default layout root, and the registry that describes it.
func NewVirtualRegistry(n int) (transfer.Bucket, *VirtualRegistry) {
	v := &VirtualRegistry{n: n, index: make(map[[32]byte]int64, 3*n+virtualBases)}
	v.layout, _ = transfer.NewLayout("")
	for i := range virtualBases {
		v.put(v.content(int64(i), vBase), int64(i)<<2|vBase)
	}
	v.manifests = make([]digest.Digest, n)
	for i := range int64(n) {
		for _, k := range []int64{vConfig, vLayer, vManifest} {
			p := v.content(i, k)
			v.put(p, i<<2|k)
			if k == vManifest {
				v.manifests[i] = digest.FromBytes(p)
			}
		}
	}
	return &virtualBucket{v: v}, v
}

// Repositories returns how many repositories the registry has.
func (v *VirtualRegistry) Repositories() int { return v.n }

// Reads returns how many objects were opened for reading.
func (v *VirtualRegistry) Reads() int64 { return v.reads.Load() }

func (v *VirtualRegistry) put(p []byte, what int64) {
	v.index[sha256.Sum256(p)] = what
}

// RepositoryName returns the name of repository i.
func (v *VirtualRegistry) RepositoryName(i int64) string {
	return fmt.Sprintf("g%04d/p%07d", i/1000, i)
}

func (v *VirtualRegistry) descriptor(i, kind int64) ocispec.Descriptor {
	p := v.content(i, kind)
	mt := MediaTypeOCILayer
	if kind == vConfig {
		mt = MediaTypeOCIConfig
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(p), Size: int64(len(p))}
}

// content computes the bytes of blob kind of repository i.
func (v *VirtualRegistry) content(i, kind int64) []byte {
	switch kind {
	case vConfig:
		return []byte(`{"architecture":"amd64","os":"linux","repository":` + strconv.FormatInt(i, 10) + `}`)
	case vLayer:
		return bytes.Repeat([]byte("layer "+strconv.FormatInt(i, 10)+" "), 8)
	case vBase:
		return bytes.Repeat([]byte("base layer "+strconv.FormatInt(i, 10)+" "), 64)
	}
	return ImageManifest(ocispec.MediaTypeImageManifest, v.descriptor(i, vConfig),
		v.descriptor(i%virtualBases, vBase), v.descriptor(i, vLayer))
}

var errVirtualNotFound = fmt.Errorf("%w in the virtual registry", transfer.ErrNotExist)

// object returns the content of key, or errVirtualNotFound.
func (v *VirtualRegistry) object(key string) ([]byte, error) {
	if d, ok := v.layout.ParseBlobKey(key); ok {
		var sum [32]byte
		if d.Algorithm() != digest.SHA256 {
			return nil, errVirtualNotFound
		}
		if _, err := hex.Decode(sum[:], []byte(d.Encoded())); err != nil {
			return nil, errVirtualNotFound
		}
		what, ok := v.index[sum]
		if !ok {
			return nil, errVirtualNotFound
		}
		return v.content(what>>2, what&3), nil
	}
	repo, rest, ok := v.splitRepo(key)
	if !ok {
		return nil, errVirtualNotFound
	}
	md := v.manifests[repo]
	switch rest {
	case "_manifests/tags/latest/current/link", "_manifests/tags/latest/index/sha256/" + md.Encoded() + "/link",
		"_manifests/revisions/sha256/" + md.Encoded() + "/link":
		return []byte(md), nil
	}
	return nil, errVirtualNotFound
}

// splitRepo splits "<root>repositories/gXXXX/pNNNNNNN/<rest>".
func (v *VirtualRegistry) splitRepo(key string) (int64, string, bool) {
	rest, ok := strings.CutPrefix(key, v.layout.RepositoriesPrefix())
	if !ok {
		return 0, "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 || !strings.HasPrefix(parts[1], "p") {
		return 0, "", false
	}
	i, err := strconv.ParseInt(parts[1][1:], 10, 64)
	if err != nil || i < 0 || i >= int64(v.n) || v.RepositoryName(i) != parts[0]+"/"+parts[1] {
		return 0, "", false
	}
	if len(parts) == 2 {
		return i, "", true
	}
	return i, parts[2], true
}

// dirs lists the "directories" directly under prefix.
func (v *VirtualRegistry) dirs(prefix string) []string {
	root := v.layout.RepositoriesPrefix()
	if prefix == root {
		var out []string
		for g := 0; g*1000 < v.n; g++ {
			out = append(out, fmt.Sprintf("g%04d", g))
		}
		return out
	}
	rest, ok := strings.CutPrefix(prefix, root)
	if !ok {
		return nil
	}
	rest = strings.TrimSuffix(rest, "/")
	if len(rest) == 5 && rest[0] == 'g' { // a group
		g, err := strconv.Atoi(rest[1:])
		if err != nil {
			return nil
		}
		var out []string
		for i := g * 1000; i < min(v.n, (g+1)*1000); i++ {
			out = append(out, fmt.Sprintf("p%07d", i))
		}
		return out
	}
	repo, sub, ok := v.splitRepo(prefix)
	if !ok {
		return nil
	}
	sub = strings.TrimSuffix(sub, "/")
	md := v.manifests[repo]
	switch sub {
	case "":
		return []string{"_layers", "_manifests"}
	case "_manifests":
		return []string{"revisions", "tags"}
	case "_manifests/tags":
		return []string{"latest"}
	case "_manifests/revisions", "_layers":
		return []string{"sha256"}
	case "_manifests/revisions/sha256":
		return []string{md.Encoded()}
	case "_layers/sha256":
		var out []string
		for _, k := range []int64{vConfig, vLayer} {
			out = append(out, digest.FromBytes(v.content(repo, k)).Encoded())
		}
		out = append(out, digest.FromBytes(v.content(repo%virtualBases, vBase)).Encoded())
		return out
	}
	return nil
}

// virtualBucket is the transfer.Bucket over a VirtualRegistry.
type virtualBucket struct{ v *VirtualRegistry }

var virtualTime = time.Unix(1_700_000_000, 0)

var errReadOnly = errors.New("transfertest: the virtual registry is read-only")

func (b *virtualBucket) Delete(context.Context, string) error { return errReadOnly }

func (b *virtualBucket) NewWriter(context.Context, string, transfer.WriterOptions) (transfer.Writer, error) {
	return nil, errReadOnly
}

func (b *virtualBucket) Attributes(_ context.Context, key string) (transfer.Attributes, error) {
	p, err := b.v.object(key)
	if err != nil {
		return transfer.Attributes{}, err
	}
	return transfer.Attributes{Size: int64(len(p)), ModTime: virtualTime}, nil
}

func (b *virtualBucket) NewReader(_ context.Context, key string) (transfer.Reader, error) {
	p, err := b.v.object(key)
	if err != nil {
		return nil, err
	}
	b.v.reads.Add(1)
	return &memReader{r: bytes.NewReader(p), size: int64(len(p)), mod: virtualTime}, nil
}

func (b *virtualBucket) List(_ context.Context, opts transfer.ListOptions) (transfer.ListPage, error) {
	if opts.Delimiter != "/" {
		return transfer.ListPage{}, errors.New("transfertest: the virtual registry lists directories only")
	}
	names := b.v.dirs(opts.Prefix)
	start := 0
	if opts.PageToken != "" {
		start, _ = strconv.Atoi(opts.PageToken)
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	var page transfer.ListPage
	for i := start; i < len(names) && i < start+size; i++ {
		page.Objects = append(page.Objects, transfer.ListObject{Key: opts.Prefix + names[i] + "/", IsDir: true})
	}
	if start+size < len(names) {
		page.NextPageToken = strconv.Itoa(start + size)
	}
	return page, nil
}

// DiscardBucket returns a bucket that accepts every write and keeps
// nothing (every object is absent), and a count of the bytes written: a
// destination whose memory does not grow with an import.
func DiscardBucket() (transfer.Bucket, *atomic.Int64) {
	n := new(atomic.Int64)
	return &discardBucket{written: n}, n
}

type discardBucket struct {
	written *atomic.Int64
}

func (b *discardBucket) Attributes(context.Context, string) (transfer.Attributes, error) {
	return transfer.Attributes{}, errVirtualNotFound
}

func (b *discardBucket) NewReader(context.Context, string) (transfer.Reader, error) {
	return nil, errVirtualNotFound
}

func (b *discardBucket) List(context.Context, transfer.ListOptions) (transfer.ListPage, error) {
	return transfer.ListPage{}, nil
}

func (b *discardBucket) Delete(context.Context, string) error { return errVirtualNotFound }

func (b *discardBucket) NewWriter(context.Context, string, transfer.WriterOptions) (transfer.Writer, error) {
	return &discardWriter{n: b.written}, nil
}

type discardWriter struct{ n *atomic.Int64 }

func (w *discardWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }
func (w *discardWriter) Close() error                { return nil }

// NullSink is a transfer.Sink that keeps nothing but counts: every
// manifest is new, no repository has tags. Its memory does not grow with
// an import, for measuring the Importer's own.
type NullSink struct {
	Repositories, BlobsLinked, ManifestsPut, Tagged atomic.Int64
}

var _ transfer.Sink = (*NullSink)(nil)

// CreateRepository implements transfer.Sink.
func (s *NullSink) CreateRepository(context.Context, string) error {
	s.Repositories.Add(1)
	return nil
}

// LinkBlob implements transfer.Sink.
func (s *NullSink) LinkBlob(context.Context, string, ocispec.Descriptor) error {
	s.BlobsLinked.Add(1)
	return nil
}

// HasManifest implements transfer.Sink.
func (s *NullSink) HasManifest(context.Context, string, digest.Digest) (bool, error) {
	return false, nil
}

// PutManifest implements transfer.Sink.
func (s *NullSink) PutManifest(context.Context, string, *transfer.Manifest) error {
	s.ManifestsPut.Add(1)
	return nil
}

// Tag implements transfer.Sink.
func (s *NullSink) Tag(context.Context, string, string, digest.Digest) error {
	s.Tagged.Add(1)
	return nil
}

// Tags implements transfer.Sink.
func (s *NullSink) Tags(context.Context, string) (map[string]digest.Digest, error) { return nil, nil }

// Untag implements transfer.Sink.
func (s *NullSink) Untag(context.Context, string, string) error { return nil }

// Manifests implements transfer.Sink: a NullSink keeps none.
func (s *NullSink) Manifests(context.Context, string) ([]digest.Digest, error) { return nil, nil }

// Blobs implements transfer.Sink: a NullSink keeps none.
func (s *NullSink) Blobs(context.Context, string) ([]digest.Digest, error) { return nil, nil }

// DeleteManifest implements transfer.Sink.
func (s *NullSink) DeleteManifest(context.Context, string, digest.Digest) error { return nil }

// UnlinkBlob implements transfer.Sink.
func (s *NullSink) UnlinkBlob(context.Context, string, digest.Digest) error { return nil }
