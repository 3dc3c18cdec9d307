package gcscopy_test

import (
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcscopy"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
)

var fastRetry = transfer.RetryPolicy{MaxAttempts: 6, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func mustLayout(t testing.TB, root string) transfer.Layout {
	t.Helper()
	l, err := transfer.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustNew(t testing.TB, src, dst transfer.Bucket, opts transfer.Options) transfer.Transferer {
	t.Helper()
	tr, err := transfer.New(src, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func mustCopier(t testing.TB, src, dst transfer.Bucket) *gcscopy.Copier {
	t.Helper()
	c, err := gcscopy.New(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var generate = transfertest.MustGenerate

var requireState = transfertest.RequireState

func descriptor(mediaType string, d digest.Digest, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: size}
}
