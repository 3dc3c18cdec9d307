package transfertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
)

// MemSink is an in-memory transfer.Sink. It is strict about call order: it
// rejects a blob link or manifest for a repository that was not created, a
// manifest whose blobs are not linked or whose children are not put, and a
// tag for a manifest that is not put, so tests catch an importer that
// writes in the wrong order. It is safe for concurrent use.
type MemSink struct {
	mu    sync.Mutex
	repos map[string]*memRepo
	calls map[string]int
	fail  func(method, repo string) error
}

type memRepo struct {
	// blobs holds every descriptor a blob was linked with (one per media
	// type).
	blobs     map[digest.Digest][]ocispec.Descriptor
	manifests map[digest.Digest]*transfer.Manifest
	tags      map[string]digest.Digest
}

// NewMemSink returns an empty MemSink.
func NewMemSink() *MemSink {
	return &MemSink{repos: map[string]*memRepo{}, calls: map[string]int{}}
}

// FailWith makes every later call consult fail first (method is
// "CreateRepository", "LinkBlob", "HasManifest", "PutManifest" or "Tag");
// a non-nil error is returned instead of doing the call. Pass nil to stop.
func (s *MemSink) FailWith(fail func(method, repo string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// Calls returns how many times method was called (failed calls included).
func (s *MemSink) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// State returns a copy of what the sink holds.
func (s *MemSink) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := State{}
	for name, r := range s.repos {
		rs := RepositoryState{Tags: map[string]digest.Digest{}}
		for d := range r.blobs {
			rs.Blobs = append(rs.Blobs, d)
		}
		for d := range r.manifests {
			rs.Manifests = append(rs.Manifests, d)
		}
		for t, d := range r.tags {
			rs.Tags[t] = d
		}
		slices.Sort(rs.Blobs)
		slices.Sort(rs.Manifests)
		out[name] = rs
	}
	return out
}

// LinkedBlob returns the descriptors blob d was linked with in repo, one
// per media type, in the order they were linked.
func (s *MemSink) LinkedBlob(repo string, d digest.Digest) []ocispec.Descriptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[repo]; r != nil {
		return slices.Clone(r.blobs[d])
	}
	return nil
}

// Manifest returns a stored manifest, or nil.
func (s *MemSink) Manifest(repo string, d digest.Digest) *transfer.Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[repo]; r != nil {
		return r.manifests[d]
	}
	return nil
}

// begin counts the call, applies FailWith and validates the name. s.mu
// must be held.
func (s *MemSink) begin(method, repo string) error {
	s.calls[method]++
	if s.fail != nil {
		if err := s.fail(method, repo); err != nil {
			return err
		}
	}
	return transfer.ValidateRepository(repo)
}

func (s *MemSink) repo(repo string) (*memRepo, error) {
	r := s.repos[repo]
	if r == nil {
		return nil, fmt.Errorf("transfertest: repository %q was not created", repo)
	}
	return r, nil
}

// CreateRepository implements transfer.Sink.
func (s *MemSink) CreateRepository(_ context.Context, repo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("CreateRepository", repo); err != nil {
		return err
	}
	if s.repos[repo] == nil {
		s.repos[repo] = &memRepo{
			blobs:     map[digest.Digest][]ocispec.Descriptor{},
			manifests: map[digest.Digest]*transfer.Manifest{},
			tags:      map[string]digest.Digest{},
		}
	}
	return nil
}

// LinkBlob implements transfer.Sink.
func (s *MemSink) LinkBlob(_ context.Context, repo string, desc ocispec.Descriptor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("LinkBlob", repo); err != nil {
		return err
	}
	if err := desc.Digest.Validate(); err != nil {
		return err
	}
	r, err := s.repo(repo)
	if err != nil {
		return err
	}
	ds := r.blobs[desc.Digest]
	if !slices.ContainsFunc(ds, func(o ocispec.Descriptor) bool { return o.MediaType == desc.MediaType }) {
		r.blobs[desc.Digest] = append(ds, desc)
	}
	return nil
}

// HasManifest implements transfer.Sink.
func (s *MemSink) HasManifest(_ context.Context, repo string, d digest.Digest) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("HasManifest", repo); err != nil {
		return false, err
	}
	r := s.repos[repo]
	return r != nil && r.manifests[d] != nil, nil
}

// PutManifest implements transfer.Sink.
func (s *MemSink) PutManifest(_ context.Context, repo string, m *transfer.Manifest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("PutManifest", repo); err != nil {
		return err
	}
	r, err := s.repo(repo)
	if err != nil {
		return err
	}
	if got := m.Digest.Algorithm().FromBytes(m.Payload); got != m.Digest {
		return &transfer.CorruptError{Digest: m.Digest, Where: transfer.ErrCorruptAtRest, Object: "manifest payload", Detail: fmt.Sprintf("payload hashes to %s", got)}
	}
	for _, b := range m.Blobs() {
		// Foreign layers are usually not stored, so they are not linked.
		if _, ok := r.blobs[b.Digest]; !ok && len(b.URLs) == 0 {
			return fmt.Errorf("transfertest: manifest %s put before its blob %s was linked in %q", m.Digest, b.Digest, repo)
		}
	}
	for _, c := range m.Manifests {
		if r.manifests[c.Digest] == nil {
			return fmt.Errorf("transfertest: index %s put before its child %s in %q", m.Digest, c.Digest, repo)
		}
	}
	r.manifests[m.Digest] = m
	return nil
}

// Tag implements transfer.Sink.
func (s *MemSink) Tag(_ context.Context, repo, tag string, d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("Tag", repo); err != nil {
		return err
	}
	if err := transfer.ValidateTag(tag); err != nil {
		return err
	}
	r, err := s.repo(repo)
	if err != nil {
		return err
	}
	if r.manifests[d] == nil {
		return fmt.Errorf("transfertest: tag %q points at manifest %s, which was not put in %q", tag, d, repo)
	}
	r.tags[tag] = d
	return nil
}

// Tags implements transfer.Sink.
func (s *MemSink) Tags(_ context.Context, repo string) (map[string]digest.Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("Tags", repo); err != nil {
		return nil, err
	}
	out := map[string]digest.Digest{}
	if r := s.repos[repo]; r != nil {
		maps.Copy(out, r.tags)
	}
	return out, nil
}

// Untag implements transfer.Sink.
func (s *MemSink) Untag(_ context.Context, repo, tag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("Untag", repo); err != nil {
		return err
	}
	if err := transfer.ValidateTag(tag); err != nil {
		return err
	}
	if r := s.repos[repo]; r != nil {
		delete(r.tags, tag)
	}
	return nil
}

// Referrers implements transfer.ReferrersLister: the manifests put in repo
// whose subject is d, sorted by digest.
func (s *MemSink) Referrers(_ context.Context, repo string, d digest.Digest) ([]ocispec.Descriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("Referrers", repo); err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	if r := s.repos[repo]; r != nil {
		for _, m := range r.manifests {
			if m.Subject != nil && m.Subject.Digest == d {
				out = append(out, m.Descriptor())
			}
		}
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out, nil
}

// Manifests implements transfer.Sink: the manifests put in repo, sorted.
func (s *MemSink) Manifests(_ context.Context, repo string) ([]digest.Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("Manifests", repo); err != nil {
		return nil, err
	}
	var out []digest.Digest
	if r := s.repos[repo]; r != nil {
		out = slices.Sorted(maps.Keys(r.manifests))
	}
	return out, nil
}

// Blobs implements transfer.Sink: the blobs linked in repo, sorted.
func (s *MemSink) Blobs(_ context.Context, repo string) ([]digest.Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("Blobs", repo); err != nil {
		return nil, err
	}
	var out []digest.Digest
	if r := s.repos[repo]; r != nil {
		out = slices.Sorted(maps.Keys(r.blobs))
	}
	return out, nil
}

// DeleteManifest implements transfer.Sink. Like the other methods it is
// strict about order: it rejects deleting a manifest that a tag or a
// remaining index of the repository still refers to.
func (s *MemSink) DeleteManifest(_ context.Context, repo string, d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("DeleteManifest", repo); err != nil {
		return err
	}
	r := s.repos[repo]
	if r == nil || r.manifests[d] == nil {
		return nil
	}
	for tag, target := range r.tags {
		if target == d {
			return fmt.Errorf("transfertest: manifest %s deleted while tag %q points at it in %q", d, tag, repo)
		}
	}
	for pd, m := range r.manifests {
		for _, c := range m.Manifests {
			if c.Digest == d {
				return fmt.Errorf("transfertest: manifest %s deleted before index %s that lists it in %q", d, pd, repo)
			}
		}
	}
	delete(r.manifests, d)
	return nil
}

// UnlinkBlob implements transfer.Sink. It rejects unlinking a blob that a
// manifest of the repository still references.
func (s *MemSink) UnlinkBlob(_ context.Context, repo string, d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin("UnlinkBlob", repo); err != nil {
		return err
	}
	r := s.repos[repo]
	if r == nil {
		return nil
	}
	for md, m := range r.manifests {
		for _, b := range m.Blobs() {
			if b.Digest == d {
				return fmt.Errorf("transfertest: blob %s unlinked while manifest %s references it in %q", d, md, repo)
			}
		}
	}
	delete(r.blobs, d)
	return nil
}
