package transfer

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// EventKind says what a Progress update is about.
type EventKind int

// Progress events.
const (
	// EventRepositoryStarted: the importer began a repository.
	EventRepositoryStarted EventKind = iota + 1
	// EventRepositoryDone: a repository finished, successfully or not.
	EventRepositoryDone
	// EventBlobDone: a blob was transferred (or found already present).
	EventBlobDone
	// EventRepositoryPlanned: the importer has read a repository's tags
	// and manifests and knows what the pass writes (Progress.Planned);
	// the blob transfers, manifests and tags follow. A repository that
	// fails or is too large before that point has none.
	EventRepositoryPlanned
	// EventManifestDone: a manifest was written to the sink.
	EventManifestDone
	// EventTagDone: a tag was written to the sink (final pass).
	EventTagDone
)

// String returns the event's name.
func (k EventKind) String() string {
	switch k {
	case EventRepositoryStarted:
		return "repository-started"
	case EventRepositoryDone:
		return "repository-done"
	case EventBlobDone:
		return "blob-done"
	case EventRepositoryPlanned:
		return "repository-planned"
	case EventManifestDone:
		return "manifest-done"
	case EventTagDone:
		return "tag-done"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Progress is a snapshot of an import, delivered to ImportOptions.Progress
// after every event.
type Progress struct {
	Kind       EventKind
	Pass       Pass
	Repository string
	// Blob is set for EventBlobDone.
	Blob *Result
	// Err is the repository's failure for EventRepositoryDone, if any.
	Err error
	// Planned is set for EventRepositoryPlanned: what the repository's
	// plan writes in this pass. Each of its blobs then has one
	// EventBlobDone, each manifest one EventManifestDone and each tag one
	// EventTagDone, so Repository's progress is the count of those events
	// over Planned.Units().
	Planned *Planned

	RepositoriesDone   int // finished, including failed and too-large ones
	RepositoriesFailed int
	RepositoriesTotal  int // while a streaming discovery runs: those found so far

	// BlobsCopied and BlobsSkipped count distinct blobs: copied ones and
	// ones the destination already held. BlobsShared counts blobs another
	// repository of this import had already handled.
	BlobsCopied  int64
	BlobsSkipped int64
	BlobsShared  int64
	BytesCopied  int64

	Elapsed time.Duration
	// BytesPerSecond is BytesCopied over Elapsed.
	BytesPerSecond float64
	Stats          Stats
	// ETA estimates the time left: the average wall time per finished
	// repository so far (which already reflects concurrency) times the
	// repositories left. Zero until one repository has finished.
	ETA time.Duration
}

// Stats are timing statistics of an import.
type Stats struct {
	// Repositories is how many repositories the timings cover.
	Repositories  int
	RepositoryMin time.Duration
	RepositoryMax time.Duration
	RepositoryAvg time.Duration
	// BlobTransfers is how many Transfer calls the timings cover.
	BlobTransfers int
	BlobMin       time.Duration
	BlobMax       time.Duration
	BlobAvg       time.Duration
}

// Planned is what a repository's plan writes in one pass.
type Planned struct {
	// Blobs are the distinct blobs transferred (or found present),
	// Manifests the manifests written, Tags the tags written (final
	// pass only).
	Blobs, Manifests, Tags int
}

// Units is the events that follow the plan: one per blob, manifest and
// tag.
func (p Planned) Units() int { return p.Blobs + p.Manifests + p.Tags }

// BlobsAndTags is the progress total an import server reports for the
// pass: one per blob transfer (EventBlobDone) and tag write
// (EventTagDone); manifests are not counted.
func (p Planned) BlobsAndTags() int { return p.Blobs + p.Tags }

// progressKey is the context key of WithProgress.
type progressKey struct{}

// WithProgress returns a context under which an Importer's passes also
// report their progress to f, as to ImportOptions.Progress (after it, one
// call at a time; f should return quickly). The pass waits for f: an f
// that blocks at a repository's EventRepositoryPlanned holds the pass
// before its first write for that repository (the import server does,
// while it checks that the repository exists), and a pass whose context
// is cancelled meanwhile writes nothing for it. It is how one caller follows
// its own pass of an Importer it shares, as httptrace.WithClientTrace
// follows one request: the import server gives each import's context its
// own f. Under a context that already carries one, both are called, the
// outer first.
func WithProgress(ctx context.Context, f func(Progress)) context.Context {
	if f == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, joinProgress(progressFrom(ctx), f))
}

// progressFrom returns the context's progress callback, or nil.
func progressFrom(ctx context.Context) func(Progress) {
	f, _ := ctx.Value(progressKey{}).(func(Progress))
	return f
}

// joinProgress calls a, then b; either may be nil.
func joinProgress(a, b func(Progress)) func(Progress) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(p Progress) {
		a(p)
		b(p)
	}
}

// tracker accumulates progress and calls the callback, one call at a time.
type tracker struct {
	mu       sync.Mutex
	p        Progress
	start    time.Time
	repoSum  time.Duration
	blobSum  time.Duration
	callback func(Progress)
}

func newTracker(pass Pass, total int, callback func(Progress)) *tracker {
	return &tracker{p: Progress{Pass: pass, RepositoriesTotal: total}, start: time.Now(), callback: callback}
}

// repoFound counts a repository found by a streaming discovery, so the
// total (and the ETA) grows as the walk goes on.
func (t *tracker) repoFound() {
	t.mu.Lock()
	t.p.RepositoriesTotal++
	t.mu.Unlock()
}

func (t *tracker) repoStarted(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emit(EventRepositoryStarted, name, nil, nil)
}

func (t *tracker) repoPlanned(name string, planned Planned) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Planned = &planned
	t.emit(EventRepositoryPlanned, name, nil, nil)
	t.p.Planned = nil
}

// written reports a manifest or tag written to the sink.
func (t *tracker) written(kind EventKind, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emit(kind, name, nil, nil)
}

func (t *tracker) repoDone(name string, took time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := &t.p
	p.RepositoriesDone++
	if err != nil {
		p.RepositoriesFailed++
	}
	s := &p.Stats
	s.Repositories++
	t.repoSum += took
	if s.Repositories == 1 || took < s.RepositoryMin {
		s.RepositoryMin = took
	}
	s.RepositoryMax = max(s.RepositoryMax, took)
	s.RepositoryAvg = t.repoSum / time.Duration(s.Repositories)
	t.emit(EventRepositoryDone, name, nil, err)
}

func (t *tracker) blobDone(repo string, res Result, shared bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := &t.p
	switch {
	case shared:
		p.BlobsShared++
	case res.Skipped:
		p.BlobsSkipped++
	default:
		p.BlobsCopied++
		p.BytesCopied += res.Bytes
	}
	if !shared {
		s := &p.Stats
		s.BlobTransfers++
		t.blobSum += res.Duration
		if s.BlobTransfers == 1 || res.Duration < s.BlobMin {
			s.BlobMin = res.Duration
		}
		s.BlobMax = max(s.BlobMax, res.Duration)
		s.BlobAvg = t.blobSum / time.Duration(s.BlobTransfers)
	}
	t.emit(EventBlobDone, repo, &res, nil)
}

// emit refreshes the derived figures and calls the callback. t.mu is held.
func (t *tracker) emit(kind EventKind, repo string, res *Result, err error) {
	p := &t.p
	p.Elapsed = time.Since(t.start)
	if secs := p.Elapsed.Seconds(); secs > 0 {
		p.BytesPerSecond = float64(p.BytesCopied) / secs
	}
	if p.RepositoriesDone > 0 {
		p.ETA = p.Elapsed / time.Duration(p.RepositoriesDone) * time.Duration(p.RepositoriesTotal-p.RepositoriesDone)
	}
	if t.callback == nil {
		return
	}
	snap := *p
	snap.Kind, snap.Repository, snap.Blob, snap.Err = kind, repo, res, err
	t.callback(snap)
}

func (t *tracker) snapshot() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.p
	p.Elapsed = time.Since(t.start)
	return p
}
