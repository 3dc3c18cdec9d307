package transfer

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
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
		return fmt.Errorf("%w: repository name %q is longer than %d characters", ErrInvalidName, clipInput(name), maxRepositoryNameLen)
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRE.MatchString(c) {
			return fmt.Errorf("%w: repository name %q has bad path component %q", ErrInvalidName, clipInput(name), clipInput(c))
		}
	}
	return nil
}

// ValidateTag checks a tag name. The error wraps ErrInvalidName.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("%w: tag %q (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})", ErrInvalidName, clipInput(tag))
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
			return Layout{}, fmt.Errorf("%w: root %q has bad component %q", ErrInvalidPath, clipInput(root), clipInput(c))
		}
	}
	return Layout{root: trimmed + "/"}, nil
}

// Root returns the layout's key prefix ("" for the bucket root, otherwise
// ending in "/").
func (l Layout) Root() string { return l.root }

// BlobKey returns the key of a blob's data:
// <root>/blobs/<algorithm>/<first two hex>/<hex>/data. d must be valid
// (see ValidateDigest); a malformed one yields a key under "invalid" that
// no layout holds.
func (l Layout) BlobKey(d digest.Digest) string {
	alg, h := digestPath(d)
	return l.BlobsPrefix() + alg + "/" + h[:2] + "/" + h + "/data"
}

// BlobsPrefix returns the prefix under which blob data lives, one
// directory per digest algorithm ("sha256/", "sha512/").
func (l Layout) BlobsPrefix() string { return l.root + "blobs/" }

// ParseBlobKey returns the digest whose data lives at key, and false when
// key is not a blob data key of this layout (or names an invalid digest).
func (l Layout) ParseBlobKey(key string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(key, l.BlobsPrefix())
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[3] != "data" {
		return "", false
	}
	d, err := digestFromPath(parts[0], parts[2])
	if err != nil || !strings.HasPrefix(parts[2], parts[1]) || len(parts[1]) != 2 {
		return "", false
	}
	return d, true
}

// RepositoriesPrefix returns the prefix under which repositories live.
func (l Layout) RepositoriesPrefix() string { return l.root + "repositories/" }

// RepositoryPrefix returns the prefix of one repository (ending in "/").
func (l Layout) RepositoryPrefix(repo string) string {
	return l.RepositoriesPrefix() + repo + "/"
}

// RevisionsPrefix returns the prefix holding a repository's manifest
// revision links, one directory per digest algorithm.
func (l Layout) RevisionsPrefix(repo string) string {
	return l.RepositoryPrefix(repo) + "_manifests/revisions/"
}

// RevisionLinkKey returns the key of a manifest revision link.
func (l Layout) RevisionLinkKey(repo string, d digest.Digest) string {
	return l.RevisionsPrefix(repo) + linkPath(d)
}

// ReferrersPrefix returns the prefix of the referrers index entries of
// subject d in repo: <repo>/_manifests/referrers/<algorithm>/<hex>/.
func (l Layout) ReferrersPrefix(repo string, d digest.Digest) string {
	alg, h := digestPath(d)
	return l.RepositoryPrefix(repo) + "_manifests/referrers/" + alg + "/" + h + "/"
}

// ReferrerLinkKey returns the key of the referrers index entry saying that
// manifest referrer has subject in repo.
func (l Layout) ReferrerLinkKey(repo string, subject, referrer digest.Digest) string {
	return l.ReferrersPrefix(repo, subject) + linkPath(referrer)
}

// TagsPrefix returns the prefix holding a repository's tags.
func (l Layout) TagsPrefix(repo string) string {
	return l.RepositoryPrefix(repo) + "_manifests/tags/"
}

// TagPrefix returns the prefix holding everything about one tag.
func (l Layout) TagPrefix(repo, tag string) string {
	return l.TagsPrefix(repo) + tag + "/"
}

// TagCurrentLinkKey returns the key of the link naming a tag's current
// manifest.
func (l Layout) TagCurrentLinkKey(repo, tag string) string {
	return l.TagPrefix(repo, tag) + "current/link"
}

// TagIndexLinkKey returns the key of a tag's history entry for a manifest.
func (l Layout) TagIndexLinkKey(repo, tag string, d digest.Digest) string {
	return l.TagPrefix(repo, tag) + "index/" + linkPath(d)
}

// LayersPrefix returns the prefix holding a repository's layer links, one
// directory per digest algorithm.
func (l Layout) LayersPrefix(repo string) string {
	return l.RepositoryPrefix(repo) + "_layers/"
}

// LayerLinkKey returns the key of a repository's link to a blob.
func (l Layout) LayerLinkKey(repo string, d digest.Digest) string {
	return l.LayersPrefix(repo) + linkPath(d)
}

// linkPath is "<algorithm>/<hex>/link", the tail of every link key.
func linkPath(d digest.Digest) string {
	alg, h := digestPath(d)
	return alg + "/" + h + "/link"
}

// digestPath splits d into the two path components the layout uses. An
// invalid digest maps to "invalid" so that a key built from one can never
// escape its prefix.
func digestPath(d digest.Digest) (alg, encoded string) {
	if d.Validate() != nil {
		return "invalid", "invalid"
	}
	return d.Algorithm().String(), d.Encoded()
}
