package transfer

import (
	"context"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
)

// StalePolicy says what the final pass does with what the Sink holds for a
// repository that a one-pass import of the current source would not have:
// manifests pre-imported for a tag that was since deleted, moved or
// dropped by the tag policy (and their referrers), and the blob links only
// they needed.
type StalePolicy int

const (
	// RemoveStale (the default) deletes them after the tags are written
	// (Sink.DeleteManifest, indexes before their children, then
	// Sink.UnlinkBlob), so that the repository ends exactly as a one-pass
	// import of the final source would leave it. Blob data stays in the
	// destination bucket for the registry's garbage collector. To find
	// them the final pass reads every manifest it selects, also those the
	// Sink already has.
	RemoveStale StalePolicy = iota
	// ReportStale lists them in RepositoryReport.StaleManifests and
	// StaleBlobs and leaves them in place.
	ReportStale
	// KeepStale neither looks for them nor reports them: the final pass
	// reads only manifests the Sink does not have yet (the cheapest, and
	// what earlier versions did).
	KeepStale
)

// String returns "remove", "report" or "keep".
func (p StalePolicy) String() string {
	switch p {
	case ReportStale:
		return "report"
	case KeepStale:
		return "keep"
	}
	return "remove"
}

// staleContent compares what the sink holds for the repository with what
// the plan reaches, and removes the difference unless the policy says to
// report it. It runs after the tags were written.
func (im *Importer) staleContent(ctx context.Context, p *repoPlan, rr *RepositoryReport) error {
	have, err := im.sink.Manifests(ctx, p.name)
	if err != nil {
		return fmt.Errorf("sink: listing manifests: %w", err)
	}
	rr.StaleManifests = unreached(have, p.reach)
	linked, err := im.sink.Blobs(ctx, p.name)
	if err != nil {
		return fmt.Errorf("sink: listing blobs: %w", err)
	}
	rr.StaleBlobs = unreached(linked, p.reachBlobs)
	if im.opts.Stale == ReportStale {
		return nil
	}
	for _, d := range im.parentsFirst(ctx, rr.StaleManifests) {
		if err := im.sink.DeleteManifest(ctx, p.name, d); err != nil {
			return fmt.Errorf("sink: deleting stale manifest %s: %w", d, err)
		}
	}
	for _, d := range rr.StaleBlobs {
		if err := im.sink.UnlinkBlob(ctx, p.name, d); err != nil {
			return fmt.Errorf("sink: unlinking stale blob %s: %w", d, err)
		}
	}
	return nil
}

// unreached returns the digests in have that reach does not hold, sorted
// (nil when there are none).
func unreached(have []digest.Digest, reach map[digest.Digest]bool) []digest.Digest {
	var out []digest.Digest
	for _, d := range have {
		if !reach[d] {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// parentsFirst orders stale manifests so that an index comes before the
// children it lists, as far as the source still has their payloads (a
// registry keeps manifest blobs after a tag or revision is deleted, until
// its garbage collector runs). Manifests it cannot read come last.
func (im *Importer) parentsFirst(ctx context.Context, stale []digest.Digest) []digest.Digest {
	children := map[digest.Digest][]digest.Digest{}
	isStale := map[digest.Digest]bool{}
	for _, d := range stale {
		isStale[d] = true
	}
	var unread []digest.Digest
	for _, d := range stale {
		m, err := im.reader.Manifest(ctx, d)
		if err != nil {
			unread = append(unread, d)
			continue
		}
		for _, c := range m.Manifests {
			if isStale[c.Digest] {
				children[d] = append(children[d], c.Digest)
			}
		}
	}
	// Depth-first post-order, reversed: every index before its children.
	// Unreadable manifests are done already: they go last, once, even
	// when a readable index lists them.
	var (
		order []digest.Digest
		done  = map[digest.Digest]bool{}
		visit func(d digest.Digest)
	)
	for _, d := range unread {
		done[d] = true
	}
	visit = func(d digest.Digest) {
		if done[d] {
			return
		}
		done[d] = true
		for _, c := range children[d] {
			visit(c)
		}
		order = append(order, d)
	}
	for _, d := range stale {
		visit(d)
	}
	slices.Reverse(order)
	return append(order, unread...)
}
