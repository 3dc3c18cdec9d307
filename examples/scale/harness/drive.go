package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
)

// repoInfo is a discovered repository.
type repoInfo struct {
	Name string
	Tags int
}

// discoverConcurrency bounds the listings that count tags.
const discoverConcurrency = 64

// discover lists the source's repositories and counts their tags, then adds
// them to the enqueuer's store, largest first: the enqueuer starts the
// oldest repositories first, and starting the longest imports first keeps
// the end of the run from waiting on one big repository started late.
func (e *env) discover(ctx context.Context) ([]repoInfo, error) {
	layout := e.w.Registry.Layout
	names, err := transfer.NewLayoutReader(e.src, layout, transfer.RetryPolicy{}).Repositories(ctx)
	if err != nil {
		return nil, fmt.Errorf("scale: listing repositories: %w", err)
	}
	repos := make([]repoInfo, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(discoverConcurrency)
	for i, name := range names {
		g.Go(func() error {
			n, err := countTags(gctx, e.src, layout, name)
			repos[i] = repoInfo{Name: name, Tags: n}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(repos, func(a, b repoInfo) int {
		return cmp.Or(cmp.Compare(b.Tags, a.Tags), strings.Compare(a.Name, b.Name))
	})
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i, r := range repos {
		_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: r.Name, TagCount: r.Tags, CreatedAt: base.Add(time.Duration(i) * time.Millisecond)})
		if err != nil {
			return nil, fmt.Errorf("scale: adding %s to the enqueuer's store: %w", r.Name, err)
		}
		e.trk.add(r.Name, r.Tags, i)
	}
	return repos, nil
}

// countTags counts the tag directories of repo.
func countTags(ctx context.Context, b transfer.Bucket, l transfer.Layout, repo string) (int, error) {
	opts := transfer.ListOptions{Prefix: l.TagsPrefix(repo), Delimiter: "/", PageSize: 1000}
	n := 0
	for first := true; first || opts.PageToken != ""; first = false {
		var page transfer.ListPage
		err := retry(ctx, func() error {
			var err error
			page, err = b.List(ctx, opts)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("scale: counting the tags of %s: %w", repo, err)
		}
		for _, o := range page.Objects {
			if o.IsDir {
				n++
			}
		}
		opts.PageToken = page.NextPageToken
	}
	return n, nil
}

// retry runs op up to 5 times while it fails with an error
// transfer.IsRetryable accepts.
func retry(ctx context.Context, op func() error) error {
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || attempt >= 5 || !transfer.IsRetryable(err) {
			return err
		}
		if werr := sleep(ctx, pause); werr != nil {
			return errors.Join(err, werr)
		}
		pause *= 2
	}
}

// errSettled ends the drive once nothing is left to import.
var errSettled = errors.New("scale: every repository imported or skipped")

// drive runs the enqueuer through an enqueuer.Scheduler, after every
// notification that changed a repository and on every tick, until every
// repository is imported or skipped. It returns how many times the
// enqueuer ran.
func (e *env) drive(ctx context.Context) (int, error) {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runs, failures := 0, 0
	var failed error
	sched, err := enqueuer.NewScheduler(e.enq, enqueuer.SchedulerOptions{
		Every:  e.opts.Tick,
		Logger: e.opts.Logger,
		// OnRun runs in this goroutine, between runs.
		OnRun: func(ctx context.Context, rep enqueuer.Report, err error) {
			runs++
			for _, o := range rep.Skipped {
				e.trk.skip(o.Repository.Path)
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !errors.Is(err, lease.ErrHeld):
				failures++
				e.opts.Logger.WarnContext(ctx, "scale: enqueuer run failed", slog.Any("error", err), slog.Int("in_a_row", failures))
				if failures >= maxEnqueuerErrors {
					failed = fmt.Errorf("scale: the enqueuer failed %d times in a row: %w", failures, err)
					stop(failed)
					return
				}
			default:
				failures = 0
			}
			switch done, err := e.settled(ctx); {
			case err != nil:
				failed = err
				stop(err)
			case done:
				stop(errSettled)
			}
		},
	})
	if err != nil {
		return 0, err
	}
	e.sched = sched
	_ = sched.Run(ctx)
	switch cause := context.Cause(ctx); {
	case failed != nil:
		return runs, failed
	case errors.Is(cause, errSettled):
		return runs, nil
	default:
		return runs, fmt.Errorf("scale: import interrupted: %w", cause)
	}
}

// settled reports whether no repository is waiting, aborted or in
// progress.
func (e *env) settled(ctx context.Context) (bool, error) {
	ctx = storage.UsePrimary(ctx)
	n, err := e.store.CountInProgress(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	for _, st := range []enqueuer.State{enqueuer.StateDefault, enqueuer.StateImportAborted} {
		rs, err := e.store.List(ctx, enqueuer.ListOptions{State: st, Limit: 1})
		if err != nil || len(rs) > 0 {
			return false, err
		}
	}
	return true, nil
}

// pass is the registry's PassFunc: one importer pass over one repository.
func (e *env) pass(ctx context.Context, pass transfer.Pass, repo string) (*transfer.Report, error) {
	start := time.Now()
	e.trk.passStarted(repo, pass, start)
	var (
		rep *transfer.Report
		err error
	)
	if pass == transfer.PreImport {
		rep, err = e.importer.PreImport(ctx, repo)
	} else {
		rep, err = e.importer.Import(ctx, repo)
	}
	end := time.Now()
	e.trk.passFinished(repo, pass, rep, err, end.Sub(start), end)
	return rep, err
}

// onProgress is the importer's progress callback.
func (e *env) onProgress(p transfer.Progress) {
	switch {
	case p.Kind == transfer.EventBlobDone && p.Blob != nil:
		e.trk.blobDone(p.Repository, *p.Blob, time.Now())
	case p.Kind == transfer.EventRepositoryPlanned:
		e.trk.planned(p.Repository, p.Planned.BlobsAndTags(), time.Now())
	case p.Kind == transfer.EventTagDone:
		e.trk.written(p.Repository)
	}
}

// progressLoop samples the ETA and the enqueuer's forecast every second, tracks the goroutine count
// and prints the progress line every ProgressInterval.
func (e *env) progressLoop(ctx context.Context, peakGoroutines *atomic.Int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s := e.trk.snapshot(now)
			if f, err := e.enq.Forecast(ctx, enqueuer.ForecastOptions{Now: now, RegistryProgress: true}); err == nil {
				e.trk.setForecast(f.Remaining, f.Known)
			}
			if g := int64(runtime.NumGoroutine()); g > peakGoroutines.Load() {
				peakGoroutines.Store(g)
			}
			if e.opts.Progress != nil && now.Sub(last) >= e.opts.ProgressInterval-100*time.Millisecond {
				fmt.Fprintln(e.opts.Progress, progressLine(s, false))
				last = now
			}
		}
	}
}

// settle reads every repository's final state from the store.
func (e *env) settle(ctx context.Context, res *Result, repos []repoInfo) error {
	ctx = storage.UsePrimary(ctx)
	for _, r := range repos {
		got, err := e.store.Get(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("scale: reading the final state of %s: %w", r.Name, err)
		}
		res.RepositoryRetries += got.RetryCount
		res.Timeline.Records = append(res.Timeline.Records, got)
		switch {
		case got.State == enqueuer.StateImportDone:
			res.Imported++
		case got.State == enqueuer.StateImportSkipped && got.SkipReason == enqueuer.SkipTooManyTags:
			res.Rejected = append(res.Rejected, Rejection{Path: r.Name, Tags: r.Tags, Reason: got.SkipReason})
		default:
			reason := cmp.Or(got.SkipReason, got.AbortReason, string(got.State))
			res.Failed = append(res.Failed, Rejection{Path: r.Name, Tags: r.Tags, Reason: reason})
		}
	}
	return nil
}

// settledGoroutines waits up to two seconds for the goroutine count to
// fall back to start (goroutines that were told to end may take a moment)
// and returns it.
func settledGoroutines(start int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 20 && n > start; i++ {
		time.Sleep(100 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}
