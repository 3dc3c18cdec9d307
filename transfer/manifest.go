package transfer

import (
	"encoding/json"
	"fmt"
)

// Media types of the manifests the importer understands.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"

	// MediaTypeDockerForeignLayer marks a layer that registries usually do
	// not store (Windows base layers); it is fetched from its URLs instead.
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// maxManifestSize bounds how much of a manifest blob the importer reads.
// Registries commonly cap manifests at 4 MiB.
const maxManifestSize = 4 << 20

// Descriptor points at a blob or a child manifest.
type Descriptor struct {
	MediaType string
	Digest    Digest
	Size      int64
	// URLs, if any, are where a foreign layer can be fetched from.
	URLs []string
}

// Manifest is a parsed image manifest or index.
type Manifest struct {
	Digest    Digest
	MediaType string
	// Payload is the manifest exactly as stored; its sha256 is Digest.
	Payload []byte
	// Config is the image configuration blob (image manifests only).
	Config *Descriptor
	// Layers are the image's layer blobs (image manifests only).
	Layers []Descriptor
	// Manifests are the children of an index or manifest list.
	Manifests []Descriptor
}

// IsIndex reports whether m is a manifest list or OCI index.
func (m *Manifest) IsIndex() bool {
	return m.MediaType == MediaTypeDockerManifestList || m.MediaType == MediaTypeOCIIndex
}

// Blobs returns the config and layer descriptors of an image manifest.
func (m *Manifest) Blobs() []Descriptor {
	var out []Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	return append(out, m.Layers...)
}

type rawDescriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      *int64   `json:"size"`
	URLs      []string `json:"urls"`
}

type rawManifest struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        *rawDescriptor  `json:"config"`
	Layers        []rawDescriptor `json:"layers"`
	Manifests     []rawDescriptor `json:"manifests"`
	FSLayers      json.RawMessage `json:"fsLayers"`
}

// ParseManifest checks that payload hashes to d and parses it as a Docker
// schema2 manifest, Docker manifest list, OCI image manifest or OCI index.
// Errors wrap ErrCorrupt (content does not match d) or ErrBadManifest.
func ParseManifest(d Digest, payload []byte) (*Manifest, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if got := DigestOf(payload); got != d {
		return nil, fmt.Errorf("%w: manifest %s: content hashes to %s", ErrCorrupt, d, got)
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
			mt = MediaTypeOCIIndex
		case raw.Config != nil && raw.Manifests == nil:
			mt = MediaTypeOCIManifest
		default:
			return nil, bad("no mediaType and neither an image manifest nor an index")
		}
	}
	m := &Manifest{Digest: d, MediaType: mt, Payload: payload}
	switch mt {
	case MediaTypeDockerManifest, MediaTypeOCIManifest:
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
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
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
		return nil, bad("unsupported mediaType %q", clip(mt))
	}
	return m, nil
}

func parseDescriptor(r rawDescriptor) (Descriptor, error) {
	d, err := ParseDigest(r.Digest)
	if err != nil {
		return Descriptor{}, err
	}
	if r.Size == nil || *r.Size < 0 {
		return Descriptor{}, fmt.Errorf("%s: missing or negative size", d)
	}
	return Descriptor{MediaType: r.MediaType, Digest: d, Size: *r.Size, URLs: r.URLs}, nil
}
