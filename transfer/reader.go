package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Tag is a tag of a repository and the manifest it currently points to.
type Tag struct {
	Name   string
	Digest digest.Digest
	// ModTime is when the tag was last written (the modification time of
	// its current link). It orders tags by recency.
	ModTime time.Time
}

// LayoutReader reads the distribution storage layout from a bucket. Every
// storage call is retried under its RetryPolicy. It is safe for concurrent
// use.
type LayoutReader struct {
	b           Bucket
	layout      Layout
	retry       RetryPolicy
	concurrency int
	name        string // the bucket's name in errors
}

// NewLayoutReader returns a LayoutReader for the layout in b. The zero
// RetryPolicy means the defaults. It lists and reads links 8 at a time;
// see WithConcurrency.
func NewLayoutReader(b Bucket, layout Layout, retry RetryPolicy) *LayoutReader {
	return &LayoutReader{b: b, layout: layout, retry: retry.withDefaults(), concurrency: defaultWalkConcurrency, name: "source bucket"}
}

// WithName returns a copy of r that names its bucket name in errors (for
// example "gs://registry-eu"; default "source bucket").
func (r *LayoutReader) WithName(name string) *LayoutReader {
	c := *r
	if name != "" {
		c.name = name
	}
	return &c
}

// WithConcurrency returns a copy of r that keeps up to n listings and link
// reads in flight (n <= 0 keeps r's). Against a store with high latency per
// operation, reading a repository with thousands of tags is bound by this.
func (r *LayoutReader) WithConcurrency(n int) *LayoutReader {
	c := *r
	if n > 0 {
		c.concurrency = n
	}
	return &c
}

// Layout returns the layout the reader reads.
func (r *LayoutReader) Layout() Layout { return r.layout }

// repositoryMarkers are the directories whose presence makes a path a
// repository. Repository path components cannot start with "_", so they
// never clash with nested repository names.
var repositoryMarkers = []string{"_manifests", "_layers", "_uploads"}

// defaultWalkConcurrency bounds parallel listings and link reads.
const defaultWalkConcurrency = 8

// maxRepositoryDepth stops runaway recursion in a malformed layout.
const maxRepositoryDepth = 64

// Repositories returns the names of all repositories, sorted. It collects
// WalkRepositories; use that to start on repositories before the listing
// of a large registry ends.
func (r *LayoutReader) Repositories(ctx context.Context) ([]string, error) {
	var repos []string
	for name, err := range r.WalkRepositories(ctx) {
		if err != nil {
			return nil, err
		}
		repos = append(repos, name)
	}
	slices.Sort(repos)
	return repos, nil
}

// WalkRepositories yields the name of every repository as it is found,
// depth first with each directory's children in sorted order ("a" before
// "a/b"). A directory is a repository when it holds _manifests, _layers or
// _uploads; other subdirectories are searched for nested repositories, so
// "a/b" and "a/b/c" can both be repositories. Names are yielded as found;
// use ValidateRepository before trusting one.
//
// The walk lists every directory once (O(directories) listings, each
// name examined once) and lists up to twice the reader's concurrency
// directories ahead of the consumer; its memory is bounded by the names in
// the directories on the current path, not by the number of repositories.
// A listing error is yielded once and ends the walk; stopping the loop
// early cancels the listings in flight.
func (r *LayoutReader) WalkRepositories(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sem := semaphore.NewWeighted(int64(r.concurrency))
		var wg sync.WaitGroup
		defer wg.Wait()
		list := func(prefix string) *dirListing {
			l := &dirListing{done: make(chan struct{})}
			wg.Go(func() {
				defer close(l.done)
				if l.err = sem.Acquire(ctx, 1); l.err != nil {
					return
				}
				defer sem.Release(1)
				l.children, l.err = r.listDirs(ctx, prefix)
			})
			return l
		}
		var walk func(prefix, name string, l *dirListing, depth int) bool
		walk = func(prefix, name string, l *dirListing, depth int) bool {
			select {
			case <-l.done:
			case <-ctx.Done():
				yield("", ctx.Err())
				return false
			}
			if l.err != nil {
				yield("", l.err)
				return false
			}
			if depth > maxRepositoryDepth {
				yield("", fmt.Errorf("%w: repositories nested deeper than %d levels under %q", ErrInvalidPath, maxRepositoryDepth, prefix))
				return false
			}
			type sub struct {
				prefix, name string
				l            *dirListing
			}
			var subs []sub
			isRepo := false
			for _, c := range l.children {
				if strings.HasPrefix(c, "_") {
					isRepo = isRepo || (name != "" && isRepositoryMarker(c))
					continue
				}
				child := c
				if name != "" {
					child = name + "/" + c
				}
				subs = append(subs, sub{prefix: prefix + c + "/", name: child})
			}
			// The next few children are listed ahead, while this
			// repository is yielded and imported; a bounded window keeps a
			// directory with many children from starting them all.
			ahead := 2 * r.concurrency
			for i := range min(ahead, len(subs)) {
				subs[i].l = list(subs[i].prefix)
			}
			if isRepo && !yield(name, nil) {
				return false
			}
			for i, s := range subs {
				if j := i + ahead; j < len(subs) {
					subs[j].l = list(subs[j].prefix)
				}
				if !walk(s.prefix, s.name, s.l, depth+1) {
					return false
				}
				subs[i].l = nil
			}
			return true
		}
		root := r.layout.RepositoriesPrefix()
		walk(root, "", list(root), 0)
	}
}

// dirListing is a directory listing that may still be in flight.
type dirListing struct {
	done     chan struct{}
	children []string
	err      error
}

func isRepositoryMarker(name string) bool {
	return slices.Contains(repositoryMarkers, name)
}

// Tags returns the tags of repo, newest first (by ModTime, then by name
// descending). A tag with a bad name, a missing or malformed current link
// fails the whole call.
func (r *LayoutReader) Tags(ctx context.Context, repo string) ([]Tag, error) {
	if err := ValidateRepository(repo); err != nil {
		return nil, err
	}
	names, err := r.listDirs(ctx, r.layout.TagsPrefix(repo))
	if err != nil {
		return nil, err
	}
	tags := make([]Tag, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.concurrency)
	for i, name := range names {
		g.Go(func() error {
			if err := ValidateTag(name); err != nil {
				return err
			}
			d, mod, err := r.readLink(gctx, r.layout.TagCurrentLinkKey(repo, name))
			if err != nil {
				return fmt.Errorf("tag %q: %w", name, err)
			}
			tags[i] = Tag{Name: name, Digest: d, ModTime: mod}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	SortTagsNewestFirst(tags)
	return tags, nil
}

// SortTagsNewestFirst orders tags by ModTime descending, breaking ties by
// name descending, the order tag policies expect.
func SortTagsNewestFirst(tags []Tag) {
	slices.SortStableFunc(tags, func(a, b Tag) int {
		if c := b.ModTime.Compare(a.ModTime); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
}

// Revisions returns the digests of every manifest revision linked in repo.
func (r *LayoutReader) Revisions(ctx context.Context, repo string) ([]digest.Digest, error) {
	if err := ValidateRepository(repo); err != nil {
		return nil, err
	}
	return r.readLinkDir(ctx, r.layout.RevisionsPrefix(repo), "revision")
}

// Layers returns the digests of every blob linked in repo's _layers.
func (r *LayoutReader) Layers(ctx context.Context, repo string) ([]digest.Digest, error) {
	if err := ValidateRepository(repo); err != nil {
		return nil, err
	}
	return r.readLinkDir(ctx, r.layout.LayersPrefix(repo), "layer")
}

// readLinkDir reads <prefix><algorithm>/<encoded>/link for every
// algorithm and encoded directory and checks that each link names the
// digest of its directory.
func (r *LayoutReader) readLinkDir(ctx context.Context, prefix, what string) ([]digest.Digest, error) {
	algs, err := r.listDirs(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, alg := range algs {
		dirs, err := r.listDirs(ctx, prefix+alg+"/")
		if err != nil {
			return nil, err
		}
		part := make([]digest.Digest, len(dirs))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(r.concurrency)
		for i, h := range dirs {
			g.Go(func() error {
				dir := prefix + alg + "/" + h
				want, err := digestFromPath(alg, h)
				if err != nil {
					return fmt.Errorf("%w: %s directory %q: %w", ErrInvalidPath, what, dir, err)
				}
				got, _, err := r.readLink(gctx, dir+"/link")
				if err != nil {
					return fmt.Errorf("%s %s: %w", what, want, err)
				}
				if got != want {
					return fmt.Errorf("%w: %s link %q names %s", ErrBadLink, what, dir+"/link", got)
				}
				part[i] = got
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

// manifestReads is how many times a manifest whose content does not match
// its digest is read before it counts as corrupt: the damage may have been
// on the way.
const manifestReads = 3

// Manifest reads, verifies and parses the manifest blob d. Content that
// does not hash to d is read again (3 reads in all); the error says
// whether the reads agreed (ErrCorruptAtRest) or not (ErrCorruptInTransit).
func (r *LayoutReader) Manifest(ctx context.Context, d digest.Digest) (*Manifest, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	var seen []digest.Digest
	for {
		var payload []byte
		_, err := r.retry.do(ctx, "read", func(ctx context.Context) error {
			var err error
			payload, _, err = readSmall(ctx, r.b, r.layout.BlobKey(d), maxManifestSize)
			if errors.Is(err, errTooLarge) {
				err = fmt.Errorf("%w: manifest %s: %w", ErrBadManifest, d, err)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, r.missing(ctx, err, d))
		}
		got := d.Algorithm().FromBytes(payload)
		if got == d {
			return ParseManifest(d, payload)
		}
		seen = append(seen, got)
		if len(seen) < manifestReads {
			continue
		}
		where := ErrCorruptAtRest
		for _, g := range seen[1:] {
			if g != seen[0] {
				where = ErrCorruptInTransit
			}
		}
		return nil, &CorruptError{Digest: d, Where: where, Object: "manifest in " + r.name,
			Detail: fmt.Sprintf("content hashes to %s (%d reads)", got, len(seen))}
	}
}

// BlobSize returns the size of blob d's data; the error wraps
// ErrMissingBlob if there is none.
func (r *LayoutReader) BlobSize(ctx context.Context, d digest.Digest) (int64, error) {
	if err := ValidateDigest(d); err != nil {
		return 0, err
	}
	var size int64
	_, err := r.retry.do(ctx, "stat", func(ctx context.Context) error {
		a, err := r.b.Attributes(ctx, r.layout.BlobKey(d))
		if err != nil {
			return r.missing(ctx, err, d)
		}
		size = a.Size
		return nil
	})
	return size, err
}

// maxLinkSize bounds a link file; real ones are 71 bytes.
const maxLinkSize = 1024

// readLink reads a link file and returns the digest it names and its
// modification time. Surrounding whitespace is tolerated.
func (r *LayoutReader) readLink(ctx context.Context, key string) (digest.Digest, time.Time, error) {
	var (
		content []byte
		mod     time.Time
	)
	_, err := r.retry.do(ctx, "read", func(ctx context.Context) error {
		var err error
		content, mod, err = readSmall(ctx, r.b, key, maxLinkSize)
		return err
	})
	switch {
	case isNotExist(err):
		return "", time.Time{}, fmt.Errorf("%w: %q does not exist", ErrBadLink, key)
	case errors.Is(err, errTooLarge):
		return "", time.Time{}, fmt.Errorf("%w: %q: %w", ErrBadLink, key, err)
	case err != nil:
		return "", time.Time{}, fmt.Errorf("reading link %q: %w", key, err)
	}
	d, err := ParseDigest(strings.TrimSpace(string(content)))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %q: %w", ErrBadLink, key, err)
	}
	return d, mod, nil
}

// errTooLarge marks an object bigger than its kind allows.
var errTooLarge = errors.New("object too large")

// readSmall reads a whole small object, refusing ones over limit bytes and
// reporting reads that end before the object's size as retryable.
func readSmall(ctx context.Context, b Bucket, key string, limit int64) ([]byte, time.Time, error) {
	rd, err := b.NewReader(ctx, key)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rd.Close()
	if rd.Size() > limit {
		return nil, time.Time{}, fmt.Errorf("%w: %d bytes, more than the %d allowed", errTooLarge, rd.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, time.Time{}, err
	}
	if int64(len(data)) != rd.Size() {
		return nil, time.Time{}, fmt.Errorf("%w: got %d of %d bytes of %q", errTruncated, len(data), rd.Size(), key)
	}
	return data, rd.ModTime(), nil
}

// listPageSize is the page size of listings.
const listPageSize = 1000

// listDirs returns the names of the "directories" directly under prefix,
// sorted. Plain objects are ignored.
func (r *LayoutReader) listDirs(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	opts := ListOptions{Prefix: prefix, Delimiter: "/", PageSize: listPageSize}
	for first := true; first || opts.PageToken != ""; first = false {
		var page ListPage
		_, err := r.retry.do(ctx, "list", func(ctx context.Context) error {
			var err error
			page, err = r.b.List(ctx, opts)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing %q: %w", prefix, bucketErr(ctx, err, r.b, r.name))
		}
		for _, o := range page.Objects {
			if o.IsDir {
				out = append(out, strings.TrimSuffix(strings.TrimPrefix(o.Key, prefix), "/"))
			}
		}
		opts.PageToken = page.NextPageToken
	}
	slices.Sort(out)
	return out, nil
}

// missing reports a blob that is not in the bucket, or the bucket that is
// not there, naming it.
func (r *LayoutReader) missing(ctx context.Context, err error, d digest.Digest) error {
	return missingBlob(ctx, err, r.b, r.name, d.String())
}

// explainEmpty describes a source in which no repository was found: a
// missing bucket, an empty one, or one whose layout is under another root.
func (r *LayoutReader) explainEmpty(ctx context.Context) error {
	if !accessible(ctx, r.b) {
		return &BucketError{Bucket: r.name, Err: ErrEmptySource}
	}
	top, err := r.listDirs(ctx, "")
	if err != nil {
		return fmt.Errorf("%w: nothing under %q in %s (listing its top level: %w)", ErrEmptySource, r.layout.RepositoriesPrefix(), r.name, err)
	}
	if len(top) == 0 {
		return fmt.Errorf("%w: %s is empty", ErrEmptySource, r.name)
	}
	if len(top) > 5 {
		top = append(top[:5], "...")
	}
	return fmt.Errorf("%w: nothing under %q in %s, whose top level holds %q: is the layout root (ImportOptions.Root) right?",
		ErrEmptySource, r.layout.RepositoriesPrefix(), r.name, top)
}

// exists reports whether anything is stored under repo's prefix.
func (r *LayoutReader) exists(ctx context.Context, repo string) (bool, error) {
	var found bool
	_, err := r.retry.do(ctx, "list", func(ctx context.Context) error {
		page, err := r.b.List(ctx, ListOptions{Prefix: r.layout.RepositoryPrefix(repo), Delimiter: "/", PageSize: 1})
		found = len(page.Objects) > 0
		return err
	})
	return found, err
}
