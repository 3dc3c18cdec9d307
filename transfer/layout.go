package transfer

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultRoot is the key prefix under which the distribution registry keeps
// its storage layout.
const DefaultRoot = "docker/registry/v2"

const maxRepositoryNameLen = 255

var (
	// A path component of a repository name, as in the distribution
	// reference grammar: lowercase alphanumerics joined by ".", "_", "__" or
	// runs of "-". This rules out "", ".", ".." and leading underscores.
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// ValidateRepository checks a repository name such as "group/project/image".
// The error wraps ErrInvalidName.
func ValidateRepository(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty repository name", ErrInvalidName)
	}
	if len(name) > maxRepositoryNameLen {
		return fmt.Errorf("%w: repository name %q is longer than %d characters", ErrInvalidName, clip(name), maxRepositoryNameLen)
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRE.MatchString(c) {
			return fmt.Errorf("%w: repository name %q has bad path component %q", ErrInvalidName, clip(name), clip(c))
		}
	}
	return nil
}

// ValidateTag checks a tag name. The error wraps ErrInvalidName.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("%w: tag %q (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})", ErrInvalidName, clip(tag))
	}
	return nil
}

// Layout computes the keys of the distribution storage layout under a root
// prefix. The zero Layout uses the bucket root; use NewLayout to get one with
// a validated root.
type Layout struct {
	root string // "" or a clean prefix ending in "/"
}

// NewLayout returns the Layout rooted at root ("" means DefaultRoot; use "/"
// for the bucket root). The root must not contain empty, "." or ".."
// components. The error wraps ErrInvalidPath.
func NewLayout(root string) (Layout, error) {
	switch root {
	case "":
		root = DefaultRoot
	case "/":
		return Layout{}, nil
	}
	trimmed := strings.TrimSuffix(root, "/")
	for _, c := range strings.Split(trimmed, "/") {
		if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "\\\x00\r\n") {
			return Layout{}, fmt.Errorf("%w: root %q has bad component %q", ErrInvalidPath, clip(root), clip(c))
		}
	}
	return Layout{root: trimmed + "/"}, nil
}

// Root returns the layout's key prefix ("" for the bucket root, otherwise
// ending in "/").
func (l Layout) Root() string { return l.root }

// BlobKey returns the key of a blob's data:
// <root>/blobs/sha256/<first two hex>/<hex>/data.
func (l Layout) BlobKey(d Digest) string {
	h := d.Hex()
	if h == "" {
		h = "invalid"
	}
	return l.BlobsPrefix() + h[:2] + "/" + h + "/data"
}

// BlobsPrefix returns the prefix under which blob data lives.
func (l Layout) BlobsPrefix() string { return l.root + "blobs/sha256/" }

// RepositoriesPrefix returns the prefix under which repositories live.
func (l Layout) RepositoriesPrefix() string { return l.root + "repositories/" }

// RepositoryPrefix returns the prefix of one repository (ending in "/").
func (l Layout) RepositoryPrefix(repo string) string {
	return l.RepositoriesPrefix() + repo + "/"
}

// RevisionsPrefix returns the prefix holding a repository's manifest
// revision links.
func (l Layout) RevisionsPrefix(repo string) string {
	return l.RepositoryPrefix(repo) + "_manifests/revisions/sha256/"
}

// RevisionLinkKey returns the key of a manifest revision link.
func (l Layout) RevisionLinkKey(repo string, d Digest) string {
	return l.RevisionsPrefix(repo) + d.Hex() + "/link"
}

// TagsPrefix returns the prefix holding a repository's tags.
func (l Layout) TagsPrefix(repo string) string {
	return l.RepositoryPrefix(repo) + "_manifests/tags/"
}

// TagCurrentLinkKey returns the key of the link naming a tag's current
// manifest.
func (l Layout) TagCurrentLinkKey(repo, tag string) string {
	return l.TagsPrefix(repo) + tag + "/current/link"
}

// TagIndexLinkKey returns the key of a tag's history entry for a manifest.
func (l Layout) TagIndexLinkKey(repo, tag string, d Digest) string {
	return l.TagsPrefix(repo) + tag + "/index/sha256/" + d.Hex() + "/link"
}

// LayersPrefix returns the prefix holding a repository's layer links.
func (l Layout) LayersPrefix(repo string) string {
	return l.RepositoryPrefix(repo) + "_layers/sha256/"
}

// LayerLinkKey returns the key of a repository's link to a blob.
func (l Layout) LayerLinkKey(repo string, d Digest) string {
	return l.LayersPrefix(repo) + d.Hex() + "/link"
}
