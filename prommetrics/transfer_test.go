package prommetrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/gcscopy"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func memBucket(*testing.T) transfer.Bucket { return transfertest.NewMemBucket() }

func TestTransferMetricsMove(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	rawSrc, dst := memBucket(t), memBucket(t)
	gen, err := transfertest.Generate(ctx, rawSrc, transfertest.SmallSpec(31))
	require.NoError(t, err)
	// Every first read of an object answers 429 once; the layer below is
	// corrupt on every read.
	victim := importedLayer(t, gen, 5)
	src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Inject: faultblob.Chain(
		faultblob.OnKeys(victim.Encoded(), func(op faultblob.Op, _ string, _ int) faultblob.Fault {
			if op == faultblob.OpRead {
				return faultblob.CorruptRead
			}
			return faultblob.None
		}),
		faultblob.FailFirst(1, faultblob.TooManyRequests, faultblob.OpRead),
	)})
	retry := transfer.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	tr, err := transfer.New(src, dst, transfer.Options{Retry: retry, Observer: m.Transfer()})
	require.NoError(t, err)
	im, err := transfer.NewImporter(src, tr, transfertest.NewMemSink(), transfer.ImportOptions{
		Retry: retry, Observer: m.Transfer(), MaxTags: 5, ContinueOnError: true})
	require.NoError(t, err)

	rep, err := im.PreImport(ctx)
	require.Error(t, err, "the corrupt layer fails its repositories")
	require.Equal(t, float64(rep.BlobsCopied), must(t, reg, "ferry_transfer_blobs_total", "method", "streamed"))
	require.Equal(t, float64(rep.BytesCopied), must(t, reg, "ferry_transfer_bytes_total", "method", "streamed"))
	require.Equal(t, float64(rep.BlobsCopied), must(t, reg, "ferry_transfer_blob_duration_seconds", "method", "streamed"))
	require.Positive(t, must(t, reg, "ferry_transfer_blob_failures_total", "reason", "corrupt_in_transit"), "once per repository that needs it")
	require.Positive(t, must(t, reg, "ferry_transfer_retries_total", "op", "copy", "cause", "corrupt"), "flipped bits are read again")
	require.Positive(t, must(t, reg, "ferry_transfer_retries_total", "op", "copy", "cause", "throttled"))
	require.Positive(t, must(t, reg, "ferry_transfer_retries_total", "op", "read", "cause", "throttled"))
	failed, tooLarge := float64(len(rep.Failed())), float64(len(rep.TooLarge))
	require.Positive(t, failed)
	require.Positive(t, tooLarge)
	require.Equal(t, failed, must(t, reg, "ferry_transfer_repositories_total", "pass", "pre_import", "outcome", "failed"))
	require.Equal(t, tooLarge, must(t, reg, "ferry_transfer_repositories_total", "pass", "pre_import", "outcome", "too_large"))
	imported := must(t, reg, "ferry_transfer_repositories_total", "pass", "pre_import", "outcome", "imported")
	require.Equal(t, float64(len(gen.Repositories)), imported+failed+tooLarge)
	require.Equal(t, float64(len(gen.Repositories)), must(t, reg, "ferry_transfer_repository_duration_seconds", "pass", "pre_import"))
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_passes_total", "pass", "pre_import", "result", "error"))
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_pass_duration_seconds", "pass", "pre_import"))

	// Blobs already at the destination are skipped; a dry run says so.
	plain, err := transfer.New(rawSrc, dst, transfer.Options{Observer: m.Transfer()})
	require.NoError(t, err)
	fresh := transfertest.PutBlob(t, rawSrc, gen.Layout, transfertest.RandomBytes(7, 1000))
	for range 2 { // copied, then already there
		_, err = plain.Transfer(ctx, fresh)
		require.NoError(t, err)
	}
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_blobs_total", "method", "skipped"))
	require.Equal(t, 1000.0, must(t, reg, "ferry_transfer_bytes_total", "method", "skipped"))
	dry, err := transfer.NewImporter(rawSrc, plain, transfertest.NewMemSink(), transfer.ImportOptions{Observer: m.Transfer(), DryRun: true})
	require.NoError(t, err)
	_, err = dry.Import(ctx, gen.Repositories[1].Name)
	require.NoError(t, err)
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_repositories_total", "pass", "final_import", "outcome", "dry_run"))
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_passes_total", "pass", "final_import", "result", "ok"))
	_, err = plain.Transfer(ctx, "sha256:0")
	require.Error(t, err)
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_blob_failures_total", "reason", "invalid_digest"))
	// A blob stored corrupt is "at rest", not "in transit".
	rotten := digest.FromString("layer bytes")
	require.NoError(t, transfertest.WriteObject(ctx, rawSrc, gen.Layout.BlobKey(rotten), []byte("LAYER BYTES")))
	_, err = plain.Transfer(ctx, rotten)
	require.ErrorIs(t, err, transfer.ErrCorruptAtRest)
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_blob_failures_total", "reason", "corrupt_at_rest"))
}

// Between GCS buckets, with gcscopy, blobs are copied by the service:
// counted as server_side, bytes included.
func TestTransferMetricsServerSide(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	gcs := gcstest.NewFakeGCS(t, "src", "dst")
	src, dst := gcs.Bucket(t, "src"), gcs.Bucket(t, "dst")
	layout, err := transfer.NewLayout("")
	require.NoError(t, err)
	d := transfertest.PutBlob(t, src, layout, transfertest.RandomBytes(1, 100_000))
	copier, err := gcscopy.New(src, dst)
	require.NoError(t, err)
	tr, err := transfer.New(src, dst, transfer.Options{Observer: m.Transfer(), ServerSide: copier})
	require.NoError(t, err)
	res, err := tr.Transfer(ctx, d)
	require.NoError(t, err)
	require.True(t, res.ServerSide)
	require.Equal(t, 1.0, must(t, reg, "ferry_transfer_blobs_total", "method", "server_side"))
	require.Equal(t, 100_000.0, must(t, reg, "ferry_transfer_bytes_total", "method", "server_side"))
}

// importedLayer is a layer of a tagged image of a repository with at most
// maxTags tags, so an import with that MaxTags copies it.
func importedLayer(t *testing.T, gen *transfertest.Registry, maxTags int) digest.Digest {
	t.Helper()
	for _, r := range gen.Repositories {
		if len(r.Tags) == 0 || len(r.Tags) > maxTags {
			continue
		}
		byDigest := map[digest.Digest]transfertest.Manifest{}
		for _, m := range r.Manifests {
			byDigest[m.Digest] = m
		}
		for _, tag := range r.Tags {
			m := byDigest[tag.Digest]
			if len(m.Children) > 0 { // an index: take its first image
				m = byDigest[m.Children[0]]
			}
			if len(m.Layers) > 0 {
				return m.Layers[0]
			}
		}
	}
	t.Fatal("no repository with a tagged image small enough")
	return ""
}
