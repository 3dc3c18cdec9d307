// Command blobcopy copies a container registry's storage from one bucket
// to another with Ferry's transfer package: every blob verified against its
// digest, transient failures retried, shared blobs copied once, in the two
// passes of a live migration (pre-import without tags, then the final
// import with tags).
//
// With no flags it runs on its own: it makes two fileblob directories under
// a temporary directory, generates a small registry (nested repositories,
// multi-arch indexes, untagged images, shared base layers) in the first,
// imports it into the second and prints what happened:
//
//	go run ./examples/blobcopy
//
// Point it at real buckets with gocloud URLs (file://, mem://, gs://); when
// both are gs:// the blobs are copied server-side (transfer/gcscopy), each
// still read once and hashed against its digest:
//
//	go run ./examples/blobcopy -src file:///var/lib/registry -dst file:///tmp/copy -tags semver:10 -max-tags 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcscopy"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "blobcopy:", err)
		os.Exit(1)
	}
}

type config struct {
	src, dst, root, tags string
	maxTags, repos, conc int
	seed                 uint64
	untagged, dryRun     bool
	cont, keep, verbose  bool
}

// run is main without the process: it parses args, copies, and writes the
// report to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("blobcopy", flag.ContinueOnError)
	fs.SetOutput(out)
	var c config
	fs.StringVar(&c.src, "src", "", "source bucket URL (default: a generated registry in a temporary fileblob directory)")
	fs.StringVar(&c.dst, "dst", "", "destination bucket URL (default: a temporary fileblob directory)")
	fs.StringVar(&c.root, "root", "", "layout root in both buckets (default docker/registry/v2)")
	fs.StringVar(&c.tags, "tags", "all", "tag policy: all, recent:N (N most recent), semver:N (semver, latest, master; back-filled to N) or newest:N (only semver tags, the N highest versions)")
	fs.IntVar(&c.maxTags, "max-tags", 0, "skip repositories with more tags than this and list them (0: no limit)")
	fs.BoolVar(&c.untagged, "untagged", false, "also copy untagged manifests and unreferenced layer links")
	fs.BoolVar(&c.dryRun, "dry-run", false, "only report what would be copied")
	fs.BoolVar(&c.cont, "continue", true, "keep going when a repository fails")
	fs.IntVar(&c.repos, "repos", 4, "repositories imported at once")
	fs.IntVar(&c.conc, "concurrency", 32, "storage operations in flight")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the generated registry")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory")
	fs.BoolVar(&c.verbose, "v", false, "log every repository")
	if err := fs.Parse(args); err != nil {
		return err
	}
	policy, err := parsePolicy(c.tags)
	if err != nil {
		return err
	}

	tmp := ""
	if c.src == "" || c.dst == "" {
		if tmp, err = os.MkdirTemp("", "ferry-blobcopy-*"); err != nil {
			return err
		}
		if c.keep {
			fmt.Fprintf(out, "working in %s (kept)\n", tmp)
		} else {
			defer os.RemoveAll(tmp)
		}
	}
	generated := c.src == ""
	srcName, dstName := c.src, c.dst
	if generated {
		srcName = filepath.Join(tmp, "src")
		c.src = fileURL(srcName)
	}
	if c.dst == "" {
		dstName = filepath.Join(tmp, "dst")
		c.dst = fileURL(dstName)
	}
	srcBlob, err := blob.OpenBucket(ctx, c.src)
	if err != nil {
		return fmt.Errorf("opening source: %w", err)
	}
	defer srcBlob.Close()
	dstBlob, err := blob.OpenBucket(ctx, c.dst)
	if err != nil {
		return fmt.Errorf("opening destination: %w", err)
	}
	defer dstBlob.Close()
	// transfer works on its own small Bucket interface; gocloudblob adapts
	// any gocloud bucket to it.
	src, dst := gocloudblob.New(srcBlob), gocloudblob.New(dstBlob)
	layout, err := transfer.NewLayout(c.root)
	if err != nil {
		return err
	}

	if generated {
		spec := transfertest.SmallSpec(c.seed)
		spec.Root = c.root
		reg, err := transfertest.Generate(ctx, src, spec)
		if err != nil {
			return fmt.Errorf("generating the sample registry: %w", err)
		}
		tags, manifests, blobs, bytes := reg.Counts()
		fmt.Fprintf(out, "generated a registry in %s: %d repositories, %d tags, %d manifests, %d blobs (%s)\n",
			srcName, len(reg.Repositories), tags, manifests, blobs, transfer.FormatBytes(bytes))
	}

	logger := slog.New(slog.DiscardHandler)
	if c.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	opts := transfer.Options{Root: c.root, Logger: logger, SourceName: srcName, DestinationName: dstName}
	if strings.HasPrefix(c.src, "gs://") && strings.HasPrefix(c.dst, "gs://") {
		// Between GCS buckets the service copies; each source blob is
		// still read once and hashed against its digest.
		if opts.ServerSide, err = gcscopy.New(src, dst); err != nil {
			return err
		}
	}
	tr, err := transfer.New(src, dst, opts)
	if err != nil {
		return err
	}
	im, err := transfer.NewImporter(src, tr, transfer.NewLayoutSink(dst, layout, transfer.RetryPolicy{}), transfer.ImportOptions{
		Root: c.root, SourceName: srcName, Tags: policy, MaxTags: c.maxTags, IncludeUntagged: c.untagged, IncludeOrphanLayers: c.untagged, DryRun: c.dryRun,
		ContinueOnError: c.cont, RepositoryConcurrency: c.repos, Concurrency: c.conc, Logger: logger,
		Progress: progressPrinter(out),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "copying %s -> %s (tags: %s)\n", srcName, dstName, c.tags)

	var failed error
	for _, pass := range []func(context.Context, ...string) (*transfer.Report, error){im.PreImport, im.Import} {
		rep, err := pass(ctx)
		if rep == nil {
			return err
		}
		printReport(out, rep)
		if err != nil {
			failed = err
			if !c.cont || ctx.Err() != nil {
				return err
			}
		}
	}
	if !c.dryRun {
		n, err := transfertest.CheckBlobs(ctx, dst, layout)
		if err != nil {
			return fmt.Errorf("verifying the destination: %w", err)
		}
		fmt.Fprintf(out, "verified: all %d blobs at the destination match their digests\n", n)
	}
	return failed
}

// fileURL opens dir with fileblob, creating it, without the MD5 sidecar
// files a content-addressed store does not need.
func fileURL(dir string) string {
	return "file://" + filepath.ToSlash(dir) + "?create_dir=true&metadata=skip"
}

func parsePolicy(s string) (transfer.TagPolicy, error) {
	kind, arg, _ := strings.Cut(s, ":")
	n, err := strconv.Atoi(arg)
	switch {
	case kind == "all" && arg == "":
		return transfer.AllTags(), nil
	case (kind == "recent" || kind == "semver" || kind == "newest") && (err != nil || n < 0):
		return nil, fmt.Errorf("-tags %q: want %s:N with N >= 0", s, kind)
	case kind == "recent":
		return transfer.MostRecentTags(n), nil
	case kind == "semver":
		return transfer.SemverTags(n), nil
	case kind == "newest":
		return transfer.NewestSemver(n), nil
	}
	return nil, fmt.Errorf("-tags %q: want all, recent:N, semver:N or newest:N", s)
}

// progressPrinter prints a line whenever a repository finishes.
func progressPrinter(out io.Writer) func(transfer.Progress) {
	return func(p transfer.Progress) {
		if p.Kind != transfer.EventRepositoryDone {
			return
		}
		status := "ok"
		if p.Err != nil {
			status = "FAILED"
		}
		fmt.Fprintf(out, "  [%s %d/%d] %-40s %-6s blobs %d copied, %d present, %d shared, %s, %s/s, ETA %s\n",
			p.Pass, p.RepositoriesDone, p.RepositoriesTotal, p.Repository, status,
			p.BlobsCopied, p.BlobsSkipped, p.BlobsShared, transfer.FormatBytes(p.BytesCopied),
			transfer.FormatBytes(int64(p.BytesPerSecond)), p.ETA.Round(time.Millisecond))
	}
}

func printReport(out io.Writer, rep *transfer.Report) {
	fmt.Fprintln(out, rep.Summary())
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  repository\ttags\tmanifests\tknown\tblobs\tsize\ttime\tstatus")
	for _, r := range rep.Repositories {
		status := "ok"
		switch {
		case r.Err != nil:
			status = "error: " + r.Err.Error()
		case r.TooLarge:
			status = "too many tags"
		}
		fmt.Fprintf(w, "  %s\t%d/%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Name, len(r.Tags), r.TagsTotal, r.Manifests, r.ManifestsKnown,
			r.Blobs, transfer.FormatBytes(r.Bytes), r.Duration.Round(time.Millisecond), status)
	}
	_ = w.Flush()
	for _, tl := range rep.TooLarge {
		fmt.Fprintf(out, "  too large: %s has %d tags (limit %d)\n", tl.Name, tl.Tags, tl.Limit)
	}
	s := rep.Stats
	if s.Repositories > 0 {
		fmt.Fprintf(out, "  repository time min/avg/max %s/%s/%s", s.RepositoryMin.Round(time.Millisecond),
			s.RepositoryAvg.Round(time.Millisecond), s.RepositoryMax.Round(time.Millisecond))
	}
	if s.BlobTransfers > 0 {
		fmt.Fprintf(out, "; blob transfer avg %s over %d", s.BlobAvg.Round(time.Microsecond), s.BlobTransfers)
	}
	fmt.Fprintln(out)
}
