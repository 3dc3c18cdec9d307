package harness

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// Baseline is the seed's importer reproduced in the same run, on the same
// simulated storage: one repository at a time, one storage operation in
// flight, one pass. It runs on a few typical repositories (around the first
// quartile of tag counts) and is extrapolated to the whole workload by its
// time per blob.
type Baseline struct {
	Repositories []string
	// Blobs is how many blobs the sample transferred; Took how long it
	// took.
	Blobs int
	Took  time.Duration
	// PerBlob is Took / Blobs.
	PerBlob time.Duration
	// Estimated is PerBlob times the blob transfers of the whole run.
	Estimated time.Duration
}

// runBaseline imports n repositories of repos one at a time into a
// separate destination.
func runBaseline(ctx context.Context, w *Workload, opts Options, repos []repoInfo) (*Baseline, error) {
	var sample []repoInfo
	for _, r := range repos {
		if opts.MaxTags == 0 || r.Tags <= opts.MaxTags {
			sample = append(sample, r)
		}
	}
	slices.SortStableFunc(sample, func(a, b repoInfo) int { return a.Tags - b.Tags })
	n := min(opts.BaselineRepositories, len(sample))
	from := max(0, min(len(sample)/4-n/2, len(sample)-n))
	sample = sample[from : from+n]
	names := make([]string, len(sample))
	for i, r := range sample {
		names[i] = r.Name
	}

	srcRaw, err := OpenDir(w.Dir)
	if err != nil {
		return nil, err
	}
	defer srcRaw.Blob().Close()
	dstDir, err := os.MkdirTemp(scratchDir(), "ferry-scale-baseline-")
	if err != nil {
		return nil, fmt.Errorf("scale: baseline destination: %w", err)
	}
	defer os.RemoveAll(dstDir)
	dstRaw, err := OpenDir(dstDir)
	if err != nil {
		return nil, err
	}
	defer dstRaw.Blob().Close()
	src, _ := faultblob.Wrap(srcRaw, faultOptions(opts, 2))
	dst, _ := faultblob.Wrap(dstRaw, faultOptions(opts, 3))
	tr, err := transfer.New(src, dst, transfer.Options{Root: w.Spec.Root, BufferSize: opts.BufferSize})
	if err != nil {
		return nil, err
	}
	im, err := transfer.NewImporter(src, tr, NewLatencySink(transfertest.NewMemSink(), opts.SinkLatency), transfer.ImportOptions{
		Root: w.Spec.Root, Concurrency: 1, RepositoryConcurrency: 1,
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rep, err := im.Import(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("scale: baseline import: %w", err)
	}
	b := &Baseline{Repositories: names, Took: time.Since(start)}
	for _, rr := range rep.Repositories {
		b.Blobs += rr.Blobs
	}
	if b.Blobs > 0 {
		b.PerBlob = b.Took / time.Duration(b.Blobs)
	}
	return b, nil
}
