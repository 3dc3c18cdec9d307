package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ImportOptions configures an Importer. The zero value imports every tag
// of every repository, stopping at the first failure.
type ImportOptions struct {
	// Root is the layout root in the source bucket. Default DefaultRoot;
	// "/" means the bucket root.
	Root string
	// Tags selects the tags to import. Default AllTags().
	Tags TagPolicy
	// MaxTags, if positive, skips repositories with more tags than this and
	// lists them in Report.TooLarge.
	MaxTags int
	// IncludeUntagged also imports manifests no selected tag reaches (every
	// revision, with what it references). By default only what the
	// selected tags reach is imported; the rest would be
	// garbage-collected anyway.
	IncludeUntagged bool
	// IncludeOrphanLayers also links blobs that _layers links but no
	// imported manifest references (left by interrupted pushes): with
	// IncludeUntagged, an in-place style full copy.
	IncludeOrphanLayers bool
	// VerifyExisting makes a pass ignore the Sink's HasManifest: every
	// selected manifest is read again and every blob it references goes
	// through the Transferer, which checks the destination object (per its
	// Options.Existing; VerifyContent re-hashes everything) and replaces a
	// bad one. Use it for a final pass that must not trust earlier ones.
	VerifyExisting bool
	// Stale says what the final pass does with manifests and blob links
	// the Sink holds that a one-pass import of the current source would
	// not have (pre-imported for a tag since deleted, moved or dropped by
	// the policy). Default RemoveStale.
	Stale StalePolicy
	// SkipReferrers turns off following OCI 1.1 referrers. By default
	// every revision whose subject is imported (signatures, SBOMs,
	// attestations, and their own referrers) comes along, as does every
	// cosign or referrers-fallback tag ("sha256-<hex>[.sig|.att|.sbom]")
	// naming an imported manifest, whatever the tag policy says.
	// Referrers of manifests that are not imported follow
	// IncludeUntagged.
	SkipReferrers bool
	// DryRun reads and validates everything and reports what would be
	// imported, without transferring blobs or calling the Sink (other than
	// HasManifest).
	DryRun bool
	// ContinueOnError keeps importing other repositories after one fails.
	// By default the first failure cancels the rest.
	ContinueOnError bool
	// RepositoryConcurrency is how many repositories are imported at once.
	// Default 4.
	RepositoryConcurrency int
	// Concurrency bounds storage work in flight across the whole import:
	// blob transfers, blob stats and manifest reads; it also sets how many
	// listings and link reads a repository's walk (tags, revisions, layers)
	// keeps in flight. Default 32.
	Concurrency int
	// SourceName names the source bucket in errors and logs (for example
	// "gs://registry-eu"). Default "source bucket".
	SourceName string
	// DedupeCacheSize bounds how many blobs an import remembers as copied
	// or sized, so that blobs shared by repositories are handled once
	// without the memory growing with the registry: beyond it the oldest
	// are forgotten (and at worst checked again). Default 65,536.
	DedupeCacheSize int
	// ReportFailuresOnly keeps only the repositories that failed or were
	// too large in Report.Repositories; the others are counted
	// (Report.RepositoryCount and the totals) and seen one by one by
	// Observer.RepositoryEnd and Progress. Without it the Report holds an
	// entry (a few hundred bytes) per repository, the one part of an
	// import's memory that grows with the registry: set it for registries
	// of hundreds of thousands of repositories.
	ReportFailuresOnly bool
	// Retry bounds retries of source reads. See RetryPolicy for defaults.
	// (Blob transfers retry under the Transferer's own policy.)
	Retry RetryPolicy
	// Progress, if set, is called after every event, one call at a time;
	// it should return quickly. WithProgress follows one pass instead.
	Progress func(Progress)
	// Logger receives per-repository messages. Default: discard.
	Logger *slog.Logger
	// Observer is told about every repository and pass, and every retry
	// of a source read, for metrics and tracing (see prommetrics). Blobs
	// are reported by the Transferer's own Options.Observer. Default: none.
	Observer Observer
}

// Importer imports repositories from the distribution storage layout in a
// source bucket: blobs go through a Transferer, metadata to a Sink.
type Importer struct {
	reader *LayoutReader
	tr     Transferer
	sink   Sink
	opts   ImportOptions
	log    *slog.Logger
}

// NewImporter returns an Importer reading the layout from src.
func NewImporter(src Bucket, tr Transferer, sink Sink, opts ImportOptions) (*Importer, error) {
	if src == nil || tr == nil || sink == nil {
		return nil, errors.New("transfer.NewImporter: source bucket, Transferer and Sink are required")
	}
	layout, err := NewLayout(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("transfer.NewImporter: %w", err)
	}
	if opts.Tags == nil {
		opts.Tags = AllTags()
	}
	if opts.RepositoryConcurrency <= 0 {
		opts.RepositoryConcurrency = 4
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 32
	}
	if opts.DedupeCacheSize <= 0 {
		opts.DedupeCacheSize = 1 << 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Retry.Observer == nil {
		opts.Retry.Observer = opts.Observer
	}
	if opts.Observer == nil {
		opts.Observer = ObserverFuncs{}
	}
	return &Importer{
		reader: NewLayoutReader(src, layout, opts.Retry).WithConcurrency(opts.Concurrency).WithName(opts.SourceName),
		tr:     tr,
		sink:   sink,
		opts:   opts,
		log:    opts.Logger,
	}, nil
}

// Repositories lists the repositories in the source layout. Finding none
// at all is an error wrapping ErrEmptySource (or ErrBucketNotFound) that
// says what the bucket holds instead, since an empty or mistyped root is
// far likelier than a registry without repositories.
func (im *Importer) Repositories(ctx context.Context) ([]string, error) {
	names, err := im.reader.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, im.reader.explainEmpty(ctx)
	}
	return names, nil
}

// PreImport runs the first pass over the named repositories (all of them if
// none are named): blobs and manifests, no tags. It is idempotent.
func (im *Importer) PreImport(ctx context.Context, repos ...string) (*Report, error) {
	return im.run(ctx, PreImport, repos)
}

// Import runs the final pass over the named repositories (all of them if
// none are named): whatever PreImport would do that is not done yet, then
// the tags. It is idempotent.
//
// The error is nil only if every repository succeeded (too-large ones do
// not count as failures). Otherwise it is the first *RepositoryError or,
// with ContinueOnError, all of them joined. The Report is returned either
// way.
func (im *Importer) Import(ctx context.Context, repos ...string) (*Report, error) {
	return im.run(ctx, FinalImport, repos)
}

func (im *Importer) run(ctx context.Context, pass Pass, names []string) (rep *Report, err error) {
	start := time.Now()
	caller := ctx // before an Observer may derive a cancellable one from it (see apply)
	ctx = im.opts.Observer.PassStart(ctx, PassStartEvent{Pass: pass, Repositories: names})
	defer func() {
		im.opts.Observer.PassEnd(ctx, PassEvent{Report: rep, Pass: pass, Duration: time.Since(start), Err: err})
	}()
	// Without names, repositories are imported as the walk finds them,
	// so a large registry starts importing long before its listing ends.
	var seq iter.Seq2[string, error]
	streaming := len(names) == 0
	if streaming {
		seq = im.reader.WalkRepositories(ctx)
	} else {
		names = slices.Clone(names)
		slices.Sort(names)
		names = slices.Compact(names)
		seq = func(yield func(string, error) bool) {
			for _, n := range names {
				if !yield(n, nil) {
					return
				}
			}
		}
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st := &runState{
		ctx:      runCtx,
		caller:   caller,
		pass:     pass,
		sem:      semaphore.NewWeighted(int64(im.opts.Concurrency)),
		progress: newTracker(pass, len(names), joinProgress(im.opts.Progress, progressFrom(ctx))),
		copied:   newBoundedCache[digest.Digest, Result](im.opts.DedupeCacheSize),
		statSize: newBoundedCache[digest.Digest, int64](im.opts.DedupeCacheSize),
	}
	im.log.InfoContext(ctx, "transfer: import starting", slog.String("pass", pass.String()),
		slog.Int("repositories", len(names)), slog.Bool("streaming", streaming), slog.Bool("dry_run", im.opts.DryRun))

	var (
		g          errgroup.Group
		mu         sync.Mutex
		reports    []RepositoryReport
		firstErr   error
		walkErr    error
		stopOnce   sync.Once
		discovered int
	)
	var totals Report // sums over every repository, listed or not
	record := func(rr RepositoryReport) {
		mu.Lock()
		defer mu.Unlock()
		totals.RepositoryCount++
		totals.Manifests += rr.Manifests
		if pass == FinalImport {
			totals.Tags += len(rr.Tags)
		}
		if im.opts.ReportFailuresOnly && rr.Err == nil && !rr.TooLarge {
			return
		}
		reports = append(reports, rr)
	}
	g.SetLimit(im.opts.RepositoryConcurrency)
	for name, err := range seq {
		if err != nil {
			walkErr = err
			cancel(err)
			break
		}
		discovered++
		if streaming {
			st.progress.repoFound()
		}
		if runCtx.Err() != nil {
			rr := RepositoryReport{Name: name, Err: &RepositoryError{Repository: name, Err: fmt.Errorf("not started: %w", context.Cause(runCtx))}}
			record(rr)
			rctx := im.opts.Observer.RepositoryStart(ctx, RepositoryStartEvent{Pass: pass, Name: name})
			im.opts.Observer.RepositoryEnd(rctx, RepositoryEvent{Pass: pass, Outcome: RepositoryFailed, Report: rr})
			continue
		}
		g.Go(func() error {
			rr := im.importRepository(runCtx, st, pass, name)
			record(rr)
			if err := rr.Err; err != nil && !im.opts.ContinueOnError {
				stopOnce.Do(func() {
					firstErr = err
					cancel(err)
				})
			}
			return nil
		})
	}
	_ = g.Wait()
	if walkErr != nil {
		return nil, fmt.Errorf("transfer: discovering repositories: %w", walkErr)
	}
	if discovered == 0 && streaming {
		return nil, fmt.Errorf("transfer: discovering repositories: %w", im.reader.explainEmpty(ctx))
	}
	slices.SortFunc(reports, func(a, b RepositoryReport) int { return strings.Compare(a.Name, b.Name) })

	rep = &Report{Pass: pass, DryRun: im.opts.DryRun, Repositories: reports, Duration: time.Since(start),
		RepositoryCount: totals.RepositoryCount, Manifests: totals.Manifests, Tags: totals.Tags}
	prog := st.progress.snapshot()
	rep.BlobsCopied, rep.BlobsSkipped, rep.BytesCopied, rep.Stats = prog.BlobsCopied, prog.BlobsSkipped, prog.BytesCopied, prog.Stats
	var errs []error
	for _, rr := range reports {
		if rr.TooLarge {
			rep.TooLarge = append(rep.TooLarge, TooLargeRepository{Name: rr.Name, Tags: rr.TagsTotal, Limit: im.opts.MaxTags})
		}
		if rr.Err != nil {
			errs = append(errs, rr.Err)
		}
	}
	im.log.InfoContext(ctx, "transfer: import finished", slog.String("summary", rep.Summary()))
	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("transfer: import interrupted: %w", context.Cause(ctx))
	case firstErr != nil:
		return rep, firstErr
	default:
		return rep, errors.Join(errs...)
	}
}

// importRepository plans and then applies one repository.
func (im *Importer) importRepository(ctx context.Context, st *runState, pass Pass, name string) (rr RepositoryReport) {
	start := time.Now()
	rr.Name = name
	st.progress.repoStarted(name)
	ctx = im.opts.Observer.RepositoryStart(ctx, RepositoryStartEvent{Pass: pass, Name: name})
	defer func() {
		rr.Duration = time.Since(start)
		st.progress.repoDone(name, rr.Duration, rr.Err)
		log := im.log.With(slog.String("repository", name), slog.Duration("took", rr.Duration))
		outcome := RepositoryImported
		switch {
		case rr.Err != nil:
			outcome = RepositoryFailed
			log.WarnContext(ctx, "transfer: repository failed", slog.Any("error", rr.Err))
		case rr.TooLarge:
			outcome = RepositoryTooLarge
			log.InfoContext(ctx, "transfer: repository has too many tags; skipped", slog.Int("tags", rr.TagsTotal), slog.Int("limit", im.opts.MaxTags))
		default:
			if im.opts.DryRun {
				outcome = RepositoryDryRun
			}
			log.InfoContext(ctx, "transfer: repository done", slog.Int("manifests", rr.Manifests), slog.Int("blobs", rr.Blobs))
		}
		im.opts.Observer.RepositoryEnd(ctx, RepositoryEvent{Pass: pass, Outcome: outcome, Report: rr})
	}()

	p, err := im.plan(ctx, st, name)
	if err != nil {
		rr.Err = &RepositoryError{Repository: name, Err: err}
		return rr
	}
	rr.TagsTotal, rr.TooLarge = p.tagsTotal, p.tooLarge
	if p.tooLarge {
		return rr
	}
	for _, t := range p.tags {
		rr.Tags = append(rr.Tags, t.Name)
	}
	rr.Manifests, rr.ManifestsKnown, rr.Blobs, rr.Bytes, rr.Referrers = len(p.manifests), p.known, len(p.blobs), p.bytes, p.referrers
	if pass == PreImport {
		rr.Tags = nil
	}
	if im.opts.DryRun {
		return rr
	}
	planned := Planned{Blobs: len(p.blobs), Manifests: len(p.manifests)}
	if pass == FinalImport {
		planned.Tags = len(p.tags)
	}
	st.progress.repoPlanned(name, planned)
	if err := im.apply(ctx, st, pass, p, &rr); err != nil {
		rr.Err = &RepositoryError{Repository: name, Err: err}
	}
	return rr
}

// apply writes a plan: blobs (transferred, then linked), then manifests
// children-first, then, in the final pass, tags; then it removes the tags
// the sink holds that the plan does not (deleted or moved out of the
// policy since an earlier pass) and, per ImportOptions.Stale, the
// manifests and blob links only they needed. It records what it removed
// in rr.
func (im *Importer) apply(ctx context.Context, st *runState, pass Pass, p *repoPlan, rr *RepositoryReport) error {
	// A pass cancelled while planning (or while its progress callback
	// held the plan) writes nothing. The caller's context is asked too: a
	// context tree is cancelled one context at a time, so a callback that
	// returns on seeing it done can run before the pass's own contexts
	// below it are cancelled.
	if err := cmp.Or(st.caller.Err(), ctx.Err()); err != nil {
		return err
	}
	if err := im.sink.CreateRepository(ctx, p.name); err != nil {
		return fmt.Errorf("sink: creating repository: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(im.opts.Concurrency)
	for _, b := range p.blobs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			res, shared, err := st.transfer(gctx, im.tr, b.Digest)
			if err != nil {
				return err
			}
			st.progress.blobDone(p.name, res, shared)
			if err := im.sink.LinkBlob(gctx, p.name, b); err != nil {
				return fmt.Errorf("sink: linking blob %s: %w", b.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, b := range p.alsoAs {
		if err := im.sink.LinkBlob(ctx, p.name, b); err != nil {
			return fmt.Errorf("sink: linking blob %s as %s: %w", b.Digest, b.MediaType, err)
		}
	}
	for _, m := range p.manifests {
		if err := im.sink.PutManifest(ctx, p.name, m); err != nil {
			return fmt.Errorf("sink: putting manifest %s: %w", m.Digest, err)
		}
		st.progress.written(EventManifestDone, p.name)
	}
	if pass != FinalImport {
		return nil
	}
	keep := map[string]bool{}
	for _, t := range p.tags {
		keep[t.Name] = true
		if err := im.sink.Tag(ctx, p.name, t.Name, t.Digest); err != nil {
			return fmt.Errorf("sink: tagging %q: %w", t.Name, err)
		}
		st.progress.written(EventTagDone, p.name)
	}
	have, err := im.sink.Tags(ctx, p.name)
	if err != nil {
		return fmt.Errorf("sink: listing tags: %w", err)
	}
	for name := range have {
		if !keep[name] {
			rr.TagsRemoved = append(rr.TagsRemoved, name)
		}
	}
	slices.Sort(rr.TagsRemoved)
	for _, name := range rr.TagsRemoved {
		if err := im.sink.Untag(ctx, p.name, name); err != nil {
			return fmt.Errorf("sink: removing stale tag %q: %w", name, err)
		}
	}
	if im.opts.Stale == KeepStale {
		return nil
	}
	return im.staleContent(ctx, p, rr)
}
