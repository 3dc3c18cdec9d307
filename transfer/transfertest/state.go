package transfertest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/opencontainers/go-digest"
)

// State is what a Sink holds, by repository name. Tests compare States.
type State map[string]RepositoryState

// RepositoryState is the content of one repository.
type RepositoryState struct {
	// Blobs and Manifests are sorted digests.
	Blobs     []digest.Digest
	Manifests []digest.Digest
	Tags      map[string]digest.Digest
}

// Counts returns the totals of linked blobs (counted per repository),
// manifests and tags.
func (s State) Counts() (blobs, manifests, tags int) {
	for _, r := range s {
		blobs += len(r.Blobs)
		manifests += len(r.Manifests)
		tags += len(r.Tags)
	}
	return blobs, manifests, tags
}

// Diff describes the differences between want and got, or returns "" if
// they are equal.
func Diff(want, got State) string {
	var out string
	for _, name := range sortedKeys(want, got) {
		w, inW := want[name]
		g, inG := got[name]
		switch {
		case !inG:
			out += fmt.Sprintf("repository %q missing\n", name)
			continue
		case !inW:
			out += fmt.Sprintf("repository %q unexpected\n", name)
			continue
		}
		out += diffList(name, "blob", w.Blobs, g.Blobs)
		out += diffList(name, "manifest", w.Manifests, g.Manifests)
		for tag, d := range w.Tags {
			if g.Tags[tag] != d {
				out += fmt.Sprintf("repository %q: tag %q = %q, want %q\n", name, tag, g.Tags[tag], d)
			}
		}
		for tag, d := range g.Tags {
			if _, ok := w.Tags[tag]; !ok {
				out += fmt.Sprintf("repository %q: unexpected tag %q -> %s\n", name, tag, d)
			}
		}
	}
	return out
}

func diffList(repo, what string, want, got []digest.Digest) string {
	var out string
	for _, d := range want {
		if _, ok := slices.BinarySearch(got, d); !ok {
			out += fmt.Sprintf("repository %q: %s %s missing\n", repo, what, d)
		}
	}
	for _, d := range got {
		if _, ok := slices.BinarySearch(want, d); !ok {
			out += fmt.Sprintf("repository %q: unexpected %s %s\n", repo, what, d)
		}
	}
	return out
}

func sortedKeys(states ...State) []string {
	var keys []string
	for _, s := range states {
		for k := range s {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// ReadLayoutState reads the State of a distribution layout in b: per
// repository its layer links, revision links and tags.
func ReadLayoutState(ctx context.Context, b transfer.Bucket, l transfer.Layout) (State, error) {
	r := transfer.NewLayoutReader(b, l, transfer.RetryPolicy{})
	names, err := r.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	s := State{}
	for _, name := range names {
		var rs RepositoryState
		if rs.Blobs, err = r.Layers(ctx, name); err != nil {
			return nil, err
		}
		if rs.Manifests, err = r.Revisions(ctx, name); err != nil {
			return nil, err
		}
		tags, err := r.Tags(ctx, name)
		if err != nil {
			return nil, err
		}
		rs.Tags = map[string]digest.Digest{}
		for _, t := range tags {
			rs.Tags[t.Name] = t.Digest
		}
		slices.Sort(rs.Blobs)
		slices.Sort(rs.Manifests)
		s[name] = rs
	}
	return s, nil
}

// CheckBlobs reads every blob under the layout in b and checks that its
// content hashes to the digest in its key. It returns how many blobs it
// checked and the first problem found.
func CheckBlobs(ctx context.Context, b transfer.Bucket, l transfer.Layout) (int, error) {
	n := 0
	for o, err := range transfer.ListAll(ctx, b, transfer.ListOptions{Prefix: l.BlobsPrefix()}) {
		if err != nil {
			return n, err
		}
		if o.IsDir {
			continue
		}
		data, err := ReadObject(ctx, b, o.Key)
		if err != nil {
			return n, err
		}
		want, ok := l.ParseBlobKey(o.Key)
		if !ok {
			return n, fmt.Errorf("%w: %q is not a blob data key", transfer.ErrInvalidPath, o.Key)
		}
		if got := want.Algorithm().FromBytes(data); got != want {
			return n, fmt.Errorf("%w: %q holds content hashing to %s", transfer.ErrCorrupt, o.Key, got)
		}
		n++
	}
	return n, nil
}

// RequireState fails t, showing the difference, unless got equals want.
func RequireState(t testing.TB, want, got State) {
	t.Helper()
	if d := Diff(want, got); d != "" {
		t.Fatalf("sink state differs from the layout:\n%s", d)
	}
}

// RequireSameLayout fails t unless the layouts under l in want and got
// hold the same repositories, blob links, manifests and tags.
func RequireSameLayout(t testing.TB, want, got transfer.Bucket, l transfer.Layout) {
	t.Helper()
	ctx := context.Background()
	w, err := ReadLayoutState(ctx, want, l)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ReadLayoutState(ctx, got, l)
	if err != nil {
		t.Fatal(err)
	}
	RequireState(t, w, g)
}
