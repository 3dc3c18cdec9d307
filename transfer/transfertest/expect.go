package transfertest

import (
	"slices"
	"time"

	"github.com/ferryhq/ferry/transfer"
	"github.com/opencontainers/go-digest"
)

// ExpectOptions mirrors the transfer.ImportOptions that shape an import's
// result.
type ExpectOptions struct {
	Tags            transfer.TagPolicy // nil means transfer.AllTags()
	MaxTags         int
	IncludeUntagged bool
	// IncludeOrphanLayers mirrors transfer.ImportOptions.IncludeOrphanLayers.
	IncludeOrphanLayers bool
	Pass                transfer.Pass
}

// Expect returns the State a Sink must hold after importing the whole
// registry with the given options.
func (r *Registry) Expect(o ExpectOptions) State {
	policy := o.Tags
	if policy == nil {
		policy = transfer.AllTags()
	}
	out := State{}
	for _, repo := range r.Repositories {
		if o.MaxTags > 0 && len(repo.Tags) > o.MaxTags {
			continue
		}
		byDigest := map[digest.Digest]Manifest{}
		for _, m := range repo.Manifests {
			byDigest[m.Digest] = m
		}
		rs := RepositoryState{Tags: map[string]digest.Digest{}}
		var (
			blobs = map[digest.Digest]bool{}
			mans  = map[digest.Digest]bool{}
			visit func(d digest.Digest)
		)
		visit = func(d digest.Digest) {
			if mans[d] {
				return
			}
			mans[d] = true
			m := byDigest[d]
			for _, c := range m.Children {
				visit(c)
			}
			if m.Config != "" {
				blobs[m.Config] = true
			}
			for _, l := range m.Layers {
				blobs[l] = true
			}
		}
		for _, t := range r.SelectedTags(repo.Name, policy) {
			visit(t.Digest)
			if o.Pass == transfer.FinalImport {
				rs.Tags[t.Name] = t.Digest
			}
		}
		if o.IncludeUntagged {
			for _, m := range repo.Manifests {
				visit(m.Digest)
			}
		}
		if o.IncludeOrphanLayers {
			for _, d := range repo.Layers {
				blobs[d] = true
			}
		}
		for d := range blobs {
			rs.Blobs = append(rs.Blobs, d)
		}
		for d := range mans {
			rs.Manifests = append(rs.Manifests, d)
		}
		slices.Sort(rs.Blobs)
		slices.Sort(rs.Manifests)
		out[repo.Name] = rs
	}
	return out
}

// SelectedTags applies policy to a repository's tags as the importer does
// (newest first, the last written being the newest).
func (r *Registry) SelectedTags(repo string, policy transfer.TagPolicy) []transfer.Tag {
	rp := r.Repository(repo)
	if rp == nil {
		return nil
	}
	base := time.Unix(1_600_000_000, 0)
	tags := make([]transfer.Tag, len(rp.Tags))
	for i, t := range rp.Tags {
		tags[i] = transfer.Tag{Name: t.Name, Digest: t.Digest, ModTime: base.Add(time.Duration(i) * time.Second)}
	}
	transfer.SortTagsNewestFirst(tags)
	return policy.SelectTags(repo, tags)
}

// TooLarge returns the repositories with more than maxTags tags, sorted.
func (r *Registry) TooLarge(maxTags int) []string {
	var out []string
	for _, repo := range r.Repositories {
		if maxTags > 0 && len(repo.Tags) > maxTags {
			out = append(out, repo.Name)
		}
	}
	return out
}
