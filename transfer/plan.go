package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"golang.org/x/sync/errgroup"
)

// maxIndexDepth bounds how deeply indexes may nest.
const maxIndexDepth = 4

// repoPlan is everything one repository needs, worked out and validated
// before anything is written, so bad input never leaves a repository half
// imported.
type repoPlan struct {
	name      string
	tagsTotal int
	tags      []Tag // selected, newest first (plus companion tags)
	referrers int   // manifests imported because their subject was
	tooLarge  bool
	// manifests to put, children before the indexes that list them.
	manifests []*Manifest
	known     int // manifests the sink already has
	blobs     []ocispec.Descriptor
	// alsoAs are further descriptors of blobs in blobs that manifests
	// reference under another media type; they are linked too.
	alsoAs []ocispec.Descriptor
	bytes  int64
	// reach and reachBlobs are every manifest and blob a one-pass import
	// of the source would leave in the repository; complete only when
	// the plan read the manifests the sink has (readKnown).
	reach      map[digest.Digest]bool
	reachBlobs map[digest.Digest]bool
}

// loaded is one manifest reached while planning.
type loaded struct {
	m     *Manifest // nil if known
	known bool
	via   string // how it was reached, for error messages
	depth int
}

// plan reads and validates repository name for pass.
func (im *Importer) plan(ctx context.Context, st *runState, name string) (*repoPlan, error) {
	if err := ValidateRepository(name); err != nil {
		return nil, err
	}
	p := &repoPlan{name: name}
	// The final pass looks for stale content (StalePolicy), so it needs
	// the whole reachable set, including what the sink already has.
	readKnown := st.pass == FinalImport && im.opts.Stale != KeepStale
	tags, err := im.reader.Tags(ctx, name)
	if err != nil {
		return nil, err
	}
	p.tagsTotal = len(tags)
	if len(tags) == 0 {
		// A repository named by the caller that is not in the source (a
		// mistyped name or root) must not pass as imported.
		ok, err := im.reader.exists(ctx, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: repository %q is not under %q in %s", ErrEmptySource, name, im.reader.layout.RepositoriesPrefix(), im.reader.name)
		}
	}
	if im.opts.MaxTags > 0 && len(tags) > im.opts.MaxTags {
		p.tooLarge = true
		return p, nil
	}
	p.tags = im.opts.Tags.SelectTags(name, slices.Clone(tags))

	// Roots: the manifests of selected tags, plus every revision and layer
	// link when untagged content is wanted.
	var roots []digest.Digest
	via := map[digest.Digest]string{}
	addRoot := func(d digest.Digest, how string) {
		if _, ok := via[d]; !ok {
			via[d] = how
			roots = append(roots, d)
		}
	}
	for _, t := range p.tags {
		addRoot(t.Digest, fmt.Sprintf("tag %q", t.Name))
	}
	var layerLinks []digest.Digest
	if im.opts.IncludeUntagged {
		revs, err := im.reader.Revisions(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, d := range revs {
			addRoot(d, "revision link")
		}
	}
	if im.opts.IncludeOrphanLayers {
		var err error
		if layerLinks, err = im.reader.Layers(ctx, name); err != nil {
			return nil, err
		}
	}

	manifests, err := im.loadManifests(ctx, st, name, roots, via, readKnown)
	if err != nil {
		return nil, err
	}
	if !im.opts.SkipReferrers {
		extra, err := im.followReferrers(ctx, st, p, tags, manifests, via, readKnown)
		if err != nil {
			return nil, err
		}
		roots = append(roots, extra...)
	}

	// Order manifests children-first, and collect their blobs in order of
	// first reference.
	var (
		seenBlob = map[digest.Digest]bool{}
		wanted   []ocispec.Descriptor
		owner    []string
		types    = map[digest.Digest][]string{}
		alsoAs   []ocispec.Descriptor
		alsoWhy  []string
		visit    func(d digest.Digest)
		visited  = map[digest.Digest]bool{}
	)
	p.reach = make(map[digest.Digest]bool, len(manifests))
	p.reachBlobs = map[digest.Digest]bool{}
	visit = func(d digest.Digest) {
		if visited[d] {
			return
		}
		visited[d] = true
		p.reach[d] = true
		l := manifests[d]
		if l.known {
			p.known++
			if l.m == nil {
				return
			}
			// Read only to know what it reaches (readKnown): its
			// children are visited, its blobs are not copied again.
			for _, c := range l.m.Manifests {
				visit(c.Digest)
			}
			for _, b := range l.m.Blobs() {
				p.reachBlobs[b.Digest] = true
			}
			return
		}
		for _, c := range l.m.Manifests {
			visit(c.Digest)
		}
		for i, b := range l.m.Blobs() {
			p.reachBlobs[b.Digest] = true
			what := "layer"
			if i == 0 {
				what = "config"
			}
			switch {
			case !seenBlob[b.Digest]:
				seenBlob[b.Digest] = true
				types[b.Digest] = []string{b.MediaType}
				wanted = append(wanted, b)
				owner = append(owner, fmt.Sprintf("%s: manifest %s: %s", l.via, d, what))
			case !slices.Contains(types[b.Digest], b.MediaType):
				types[b.Digest] = append(types[b.Digest], b.MediaType)
				alsoAs = append(alsoAs, b)
				alsoWhy = append(alsoWhy, fmt.Sprintf("%s: manifest %s: %s", l.via, d, what))
			}
		}
		p.manifests = append(p.manifests, l.m)
	}
	for _, d := range roots {
		visit(d)
	}
	for _, d := range layerLinks {
		p.reachBlobs[d] = true
		if !seenBlob[d] {
			seenBlob[d] = true
			wanted = append(wanted, ocispec.Descriptor{Digest: d, Size: -1})
			owner = append(owner, "layer link")
		}
	}
	if p.blobs, err = im.checkBlobs(ctx, st, wanted, owner); err != nil {
		return nil, err
	}
	size := make(map[digest.Digest]int64, len(p.blobs))
	for _, b := range p.blobs {
		p.bytes += b.Size
		size[b.Digest] = b.Size
	}
	for i, b := range alsoAs {
		n, ok := size[b.Digest]
		switch {
		case !ok: // a foreign layer that is not stored
			continue
		case b.Size >= 0 && b.Size != n:
			return nil, fmt.Errorf("%s: %w", alsoWhy[i], &CorruptError{Digest: b.Digest, Where: ErrCorruptAtRest, Object: "source", Detail: fmt.Sprintf("descriptor says %d bytes, stored blob has %d", b.Size, n)})
		}
		b.Size = n
		p.alsoAs = append(p.alsoAs, b)
	}
	return p, nil
}

// loadManifests reads, verifies and parses every manifest reachable from
// roots (following index children), level by level and concurrently.
// Manifests the sink already has are not read unless readKnown.
func (im *Importer) loadManifests(ctx context.Context, st *runState, repo string, roots []digest.Digest, via map[digest.Digest]string, readKnown bool) (map[digest.Digest]*loaded, error) {
	out := map[digest.Digest]*loaded{}
	var mu sync.Mutex
	level := roots
	for depth := 0; len(level) > 0; depth++ {
		var next []digest.Digest
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(im.opts.Concurrency)
		for _, d := range level {
			mu.Lock()
			_, dup := out[d]
			how := via[d]
			if !dup {
				out[d] = &loaded{via: how, depth: depth}
			}
			mu.Unlock()
			if dup {
				continue
			}
			g.Go(func() error {
				var (
					known bool
					m     *Manifest
				)
				err := st.limit(gctx, func() error {
					var err error
					if !im.opts.VerifyExisting {
						if known, err = im.sink.HasManifest(gctx, repo, d); err != nil {
							return fmt.Errorf("sink: checking manifest %s: %w", d, err)
						}
					}
					if !known || readKnown {
						m, err = im.reader.Manifest(gctx, d)
					}
					return err
				})
				if err != nil {
					return fmt.Errorf("%s: %w", how, err)
				}
				mu.Lock()
				defer mu.Unlock()
				l := out[d]
				l.known, l.m = known, m
				if m == nil {
					return nil
				}
				if len(m.Manifests) > 0 && depth >= maxIndexDepth {
					return fmt.Errorf("%s: %w: manifest %s: indexes nested deeper than %d levels", how, ErrBadManifest, d, maxIndexDepth)
				}
				for _, c := range m.Manifests {
					if _, ok := via[c.Digest]; !ok {
						via[c.Digest] = fmt.Sprintf("%s: index %s: child", how, d)
					}
					next = append(next, c.Digest)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		slices.Sort(next)
		level = slices.Compact(next)
	}
	return out, nil
}

// checkBlobs makes sure every wanted blob exists in the source with the
// size its descriptor claims, filling in unknown sizes (-1). Foreign layers
// that are not stored are dropped.
func (im *Importer) checkBlobs(ctx context.Context, st *runState, wanted []ocispec.Descriptor, owner []string) ([]ocispec.Descriptor, error) {
	keep := make([]bool, len(wanted))
	var g errgroup.Group
	g.SetLimit(im.opts.Concurrency)
	for i := range wanted {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			desc := &wanted[i]
			size, err := st.blobSize(im.reader, desc.Digest)
			switch {
			case errors.Is(err, ErrMissingBlob) && len(desc.URLs) > 0:
				im.log.DebugContext(ctx, "transfer: foreign layer not stored; skipping", slog.String("digest", string(desc.Digest)))
				return nil
			case err != nil:
				return fmt.Errorf("%s: %w", owner[i], err)
			case desc.Size >= 0 && desc.Size != size:
				return fmt.Errorf("%s: %w", owner[i], &CorruptError{Digest: desc.Digest, Where: ErrCorruptAtRest, Object: "source", Detail: fmt.Sprintf("descriptor says %d bytes, stored blob has %d", desc.Size, size)})
			}
			desc.Size = size
			keep[i] = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for i, d := range wanted {
		if keep[i] {
			out = append(out, d)
		}
	}
	return out, nil
}

// companionTagRE matches tags that tools derive from a manifest digest:
// cosign's "sha256-<hex>.sig", ".att" and ".sbom", and the referrers
// fallback index tag "sha256-<hex>" that clients push when a registry has
// no referrers API.
var companionTagRE = regexp.MustCompile(`^(sha256|sha384|sha512)-([0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})(\.[a-z]+)?$`)

// companionOf returns the digest a companion tag names.
func companionOf(tag string) (digest.Digest, bool) {
	m := companionTagRE.FindStringSubmatch(tag)
	if m == nil {
		return "", false
	}
	d, err := ParseDigest(m[1] + ":" + m[2])
	return d, err == nil
}

// followReferrers adds what a registry serving the selected manifests
// also serves: every revision whose subject is imported (OCI 1.1
// referrers: signatures, SBOMs, attestations), transitively, and every
// companion tag (cosign, referrers fallback) naming an imported manifest,
// with what those reach. It returns the new roots. With readKnown every
// revision is read, and a manifest counts as imported only if it is
// reached now, not merely because the sink has it (it may be stale).
func (im *Importer) followReferrers(ctx context.Context, st *runState, p *repoPlan, all []Tag, manifests map[digest.Digest]*loaded, via map[digest.Digest]string, readKnown bool) ([]digest.Digest, error) {
	revs, err := im.reader.Revisions(ctx, p.name)
	if err != nil {
		return nil, err
	}
	// The subject of every revision the sink does not have yet. Known
	// revisions are in the sink already, with whatever they reach.
	var (
		mu      sync.Mutex
		subject = map[digest.Digest]digest.Digest{}
		g, gctx = errgroup.WithContext(ctx)
	)
	g.SetLimit(im.opts.Concurrency)
	for _, d := range revs {
		if manifests[d] != nil {
			continue
		}
		g.Go(func() error {
			return st.limit(gctx, func() error {
				known, err := im.sink.HasManifest(gctx, p.name, d)
				if err != nil || (known && !readKnown) {
					return err
				}
				m, err := im.reader.Manifest(gctx, d)
				if err != nil {
					return fmt.Errorf("revision %s: %w", d, err)
				}
				if m.Subject != nil {
					mu.Lock()
					subject[d] = m.Subject.Digest
					mu.Unlock()
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// A subject the sink already has was imported by an earlier pass.
	inSink := map[digest.Digest]bool{}
	reached := func(d digest.Digest) (bool, error) {
		if manifests[d] != nil {
			return true, nil
		}
		if readKnown {
			return false, nil
		}
		if ok, seen := inSink[d]; seen {
			return ok, nil
		}
		ok, err := im.sink.HasManifest(ctx, p.name, d)
		inSink[d] = ok
		return ok, err
	}
	selected := map[string]bool{}
	for _, t := range p.tags {
		selected[t.Name] = true
	}
	var extra []digest.Digest
	for {
		var added []digest.Digest
		for r, s := range subject {
			if manifests[r] != nil {
				continue
			}
			ok, err := reached(s)
			if err != nil {
				return nil, fmt.Errorf("sink: checking manifest %s: %w", s, err)
			}
			if ok {
				added = append(added, r)
				via[r] = fmt.Sprintf("referrer of %s", s)
				p.referrers++
			}
		}
		for _, t := range all {
			named, ok := companionOf(t.Name)
			if !ok || selected[t.Name] {
				continue
			}
			if ok, err := reached(named); err != nil {
				return nil, fmt.Errorf("sink: checking manifest %s: %w", named, err)
			} else if ok {
				selected[t.Name] = true
				p.tags = append(p.tags, t)
				if manifests[t.Digest] == nil {
					added = append(added, t.Digest)
					if _, ok := via[t.Digest]; !ok {
						via[t.Digest] = fmt.Sprintf("tag %q", t.Name)
					}
				}
			}
		}
		if len(added) == 0 {
			SortTagsNewestFirst(p.tags)
			return extra, nil
		}
		slices.Sort(added)
		added = slices.Compact(added)
		more, err := im.loadManifests(ctx, st, p.name, added, via, readKnown)
		if err != nil {
			return nil, err
		}
		for d, l := range more {
			if manifests[d] == nil {
				manifests[d] = l
			}
		}
		extra = append(extra, added...)
	}
}
