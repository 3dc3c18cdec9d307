package gcstest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcscopy"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/opencontainers/go-digest"
)

// Between two GCS buckets, with a gcscopy.Copier, the Transferer copies
// server-side. Trusting the service's checksums, the traffic counter shows
// a rewrite call and no blob bytes through the host; by default the source
// would be read once to verify it.
func Example() {
	t := &testing.T{} // in a real test, the test's own *testing.T
	ctx := context.Background()
	gcs := gcstest.NewFakeGCS(t, "old", "new")
	src, dst := gcs.Bucket(t, "old"), gcs.Bucket(t, "new")

	data := []byte("layer bytes")
	digest := digest.FromBytes(data)
	layout, _ := transfer.NewLayout("") // docker/registry/v2
	_ = src.Blob().WriteAll(ctx, layout.BlobKey(digest), data, nil)
	gcs.Traffic.Reset()

	copier, _ := gcscopy.New(src, dst)
	tr, _ := transfer.New(src, dst, transfer.Options{ServerSide: copier, ServerSideVerify: transfer.TrustChecksums})
	res, err := tr.Transfer(ctx, digest)
	fmt.Println(err, res.ServerSide, gcs.Traffic.PayloadBytes(), gcs.Traffic.Rewrites())
	// Output: <nil> true 0 1
}
