package transfer

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the Docker manifests the importer understands. The OCI
// ones are image-spec's: ocispec.MediaTypeImageManifest and
// ocispec.MediaTypeImageIndex.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"

	// MediaTypeDockerForeignLayer marks a layer that registries usually do
	// not store (Windows base layers); it is fetched from its URLs instead.
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// maxManifestSize bounds how much of a manifest blob the importer reads.
// Registries commonly cap manifests at 4 MiB.
const maxManifestSize = 4 << 20

// Manifest is a parsed image manifest, index or artifact manifest, with
// what a registry needs to serve it without parsing the payload again.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	// Payload is the manifest exactly as stored; it hashes to Digest.
	Payload []byte
	// ArtifactType is the OCI 1.1 artifactType ("" when absent; for an
	// image manifest a client falls back to Config.MediaType).
	ArtifactType string
	// Subject is the manifest this one refers to (OCI 1.1 referrers:
	// signatures, SBOMs, attestations), or nil.
	Subject *ocispec.Descriptor
	// Annotations are the manifest's top-level annotations.
	Annotations map[string]string
	// Config is the image configuration blob (image manifests only).
	Config *ocispec.Descriptor
	// Layers are the image's layer blobs (image manifests only).
	Layers []ocispec.Descriptor
	// Manifests are the children of an index or manifest list, with
	// their platform, annotations and artifactType.
	Manifests []ocispec.Descriptor
}

// IsIndex reports whether m is a manifest list or OCI index.
func (m *Manifest) IsIndex() bool {
	return m.MediaType == MediaTypeDockerManifestList || m.MediaType == ocispec.MediaTypeImageIndex
}

// Blobs returns the config and layer descriptors of an image manifest.
func (m *Manifest) Blobs() []ocispec.Descriptor {
	var out []ocispec.Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	return append(out, m.Layers...)
}

// Descriptor returns the descriptor a registry serves for m (in a
// referrers list, for example): media type, digest, size, artifactType
// (falling back to the config's media type, as OCI 1.1 says) and
// annotations.
func (m *Manifest) Descriptor() ocispec.Descriptor {
	at := m.ArtifactType
	if at == "" && m.Config != nil && m.MediaType == ocispec.MediaTypeImageManifest {
		at = m.Config.MediaType
	}
	return ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       m.Digest,
		Size:         int64(len(m.Payload)),
		ArtifactType: at,
		Annotations:  m.Annotations,
	}
}

// rawDescriptor is a descriptor as found in JSON; Size is a pointer so a
// missing size is told from zero.
type rawDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         *int64            `json:"size"`
	URLs         []string          `json:"urls"`
	Annotations  map[string]string `json:"annotations"`
	Platform     *ocispec.Platform `json:"platform"`
	ArtifactType string            `json:"artifactType"`
}

type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *rawDescriptor    `json:"config"`
	Layers        []rawDescriptor   `json:"layers"`
	Manifests     []rawDescriptor   `json:"manifests"`
	Subject       *rawDescriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
	FSLayers      json.RawMessage   `json:"fsLayers"`
}

// ParseManifest checks that payload hashes to d (with d's algorithm) and
// parses it as a Docker schema2 manifest, Docker manifest list, OCI image
// manifest or OCI index. Errors wrap ErrInvalidDigest, ErrCorrupt (content
// does not match d) or ErrBadManifest.
func ParseManifest(d digest.Digest, payload []byte) (*Manifest, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	if got := d.Algorithm().FromBytes(payload); got != d {
		return nil, &CorruptError{Digest: d, Where: ErrCorruptAtRest, Object: "manifest payload", Detail: fmt.Sprintf("content hashes to %s", got)}
	}
	var raw rawManifest
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadManifest, d, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: manifest %s: %s", ErrBadManifest, d, fmt.Sprintf(format, args...))
	}
	switch {
	case raw.SchemaVersion == nil:
		return nil, bad("no schemaVersion")
	case *raw.SchemaVersion == 1 || raw.FSLayers != nil:
		return nil, bad("schema 1 manifests are not supported")
	case *raw.SchemaVersion != 2:
		return nil, bad("unsupported schemaVersion %d", *raw.SchemaVersion)
	}
	mt := raw.MediaType
	if mt == "" {
		// mediaType is optional in OCI documents; tell them apart by shape.
		switch {
		case raw.Manifests != nil && raw.Config == nil:
			mt = ocispec.MediaTypeImageIndex
		case raw.Config != nil && raw.Manifests == nil:
			mt = ocispec.MediaTypeImageManifest
		default:
			return nil, bad("no mediaType and neither an image manifest nor an index")
		}
	}
	m := &Manifest{Digest: d, MediaType: mt, Payload: payload, ArtifactType: raw.ArtifactType, Annotations: raw.Annotations}
	if raw.Subject != nil {
		s, err := parseDescriptor(*raw.Subject)
		if err != nil {
			return nil, fmt.Errorf("%w: manifest %s: subject: %w", ErrBadManifest, d, err)
		}
		m.Subject = &s
	}
	switch mt {
	case MediaTypeDockerManifest, ocispec.MediaTypeImageManifest:
		if raw.Manifests != nil {
			return nil, bad("image manifest has a manifests list")
		}
		if raw.Config == nil {
			return nil, bad("image manifest has no config")
		}
		c, err := parseDescriptor(*raw.Config)
		if err != nil {
			return nil, fmt.Errorf("%w: manifest %s: config: %w", ErrBadManifest, d, err)
		}
		m.Config = &c
		for i, l := range raw.Layers {
			desc, err := parseDescriptor(l)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest %s: layer %d: %w", ErrBadManifest, d, i, err)
			}
			m.Layers = append(m.Layers, desc)
		}
	case MediaTypeDockerManifestList, ocispec.MediaTypeImageIndex:
		if raw.Config != nil || raw.Layers != nil {
			return nil, bad("index has config or layers")
		}
		for i, c := range raw.Manifests {
			desc, err := parseDescriptor(c)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest %s: child manifest %d: %w", ErrBadManifest, d, i, err)
			}
			m.Manifests = append(m.Manifests, desc)
		}
	default:
		return nil, bad("unsupported mediaType %q", clipInput(mt))
	}
	return m, nil
}

func parseDescriptor(r rawDescriptor) (ocispec.Descriptor, error) {
	d, err := ParseDigest(r.Digest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if r.Size == nil || *r.Size < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("%s: missing or negative size", d)
	}
	return ocispec.Descriptor{
		MediaType:    r.MediaType,
		Digest:       d,
		Size:         *r.Size,
		URLs:         r.URLs,
		Annotations:  r.Annotations,
		Platform:     r.Platform,
		ArtifactType: r.ArtifactType,
	}, nil
}
