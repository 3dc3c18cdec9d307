package transfertest

import (
	"encoding/json"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of configs and layers used by the builders and the generator.
const (
	MediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeOCIConfig    = "application/vnd.oci.image.config.v1+json"
	MediaTypeOCILayer     = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type jsonDescriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    string        `json:"digest"`
	Size      int64         `json:"size"`
	URLs      []string      `json:"urls,omitempty"`
	Platform  *jsonPlatform `json:"platform,omitempty"`
}

type jsonPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func toJSON(d ocispec.Descriptor) jsonDescriptor {
	return jsonDescriptor{MediaType: d.MediaType, Digest: string(d.Digest), Size: d.Size, URLs: d.URLs}
}

// ImageManifest returns the JSON of an image manifest of the given media
// type (Docker schema2 or OCI).
func ImageManifest(mediaType string, config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	m := struct {
		SchemaVersion int              `json:"schemaVersion"`
		MediaType     string           `json:"mediaType"`
		Config        jsonDescriptor   `json:"config"`
		Layers        []jsonDescriptor `json:"layers"`
	}{SchemaVersion: 2, MediaType: mediaType, Config: toJSON(config), Layers: []jsonDescriptor{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, toJSON(l))
	}
	p, _ := json.MarshalIndent(m, "", "   ")
	return p
}

// Architectures are assigned, in order, to the children of IndexManifest.
var Architectures = []string{"amd64", "arm64", "ppc64le", "s390x", "riscv64"}

// IndexManifest returns the JSON of a manifest list or OCI index of the
// given media type. Children get linux platforms in Architectures order.
func IndexManifest(mediaType string, children ...ocispec.Descriptor) []byte {
	m := struct {
		SchemaVersion int              `json:"schemaVersion"`
		MediaType     string           `json:"mediaType"`
		Manifests     []jsonDescriptor `json:"manifests"`
	}{SchemaVersion: 2, MediaType: mediaType, Manifests: []jsonDescriptor{}}
	for i, c := range children {
		j := toJSON(c)
		j.Platform = &jsonPlatform{Architecture: Architectures[i%len(Architectures)], OS: "linux"}
		m.Manifests = append(m.Manifests, j)
	}
	p, _ := json.MarshalIndent(m, "", "   ")
	return p
}

// ConfigAndLayerTypes returns the config and layer media types that go with
// a manifest media type.
func ConfigAndLayerTypes(manifestType string) (config, layer string) {
	if manifestType == ocispec.MediaTypeImageManifest || manifestType == ocispec.MediaTypeImageIndex {
		return MediaTypeOCIConfig, MediaTypeOCILayer
	}
	return MediaTypeDockerConfig, MediaTypeDockerLayer
}

// MediaTypeEmptyJSON is the OCI empty descriptor's media type, the config
// of artifact manifests.
const MediaTypeEmptyJSON = "application/vnd.oci.empty.v1+json"

// EmptyJSON is the content of the OCI empty descriptor ("{}").
var EmptyJSON = []byte("{}")

// ReferrerManifest returns the JSON of an OCI 1.1 artifact manifest: an
// image manifest with the empty config, the given artifactType and blobs,
// and subject (a signature, SBOM or attestation of subject).
func ReferrerManifest(artifactType string, subject ocispec.Descriptor, blobs ...ocispec.Descriptor) []byte {
	type subj struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	m := struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        jsonDescriptor    `json:"config"`
		Layers        []jsonDescriptor  `json:"layers"`
		Subject       subj              `json:"subject"`
		Annotations   map[string]string `json:"annotations"`
	}{
		SchemaVersion: 2, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config:      jsonDescriptor{MediaType: MediaTypeEmptyJSON, Digest: string(digest.FromBytes(EmptyJSON)), Size: int64(len(EmptyJSON))},
		Layers:      []jsonDescriptor{},
		Subject:     subj{MediaType: subject.MediaType, Digest: string(subject.Digest), Size: subject.Size},
		Annotations: map[string]string{"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
	}
	for _, b := range blobs {
		m.Layers = append(m.Layers, toJSON(b))
	}
	p, _ := json.MarshalIndent(m, "", "   ")
	return p
}
