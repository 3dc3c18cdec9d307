package gcscopy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcscopy"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// Between two GCS buckets the service copies the blob. By default the
// source is read once and hashed against its digest first, so a corrupt
// source object is refused; nothing is written by the host.
func Example() {
	t := &testing.T{} // in a real program: two gcsblob buckets
	ctx := context.Background()
	gcs := gcstest.NewFakeGCS(t, "old-registry", "new-registry")
	src, dst := gcs.Bucket(t, "old-registry"), gcs.Bucket(t, "new-registry")
	layout, _ := transfer.NewLayout("")

	good := []byte("layer bytes")
	_ = transfertest.WriteObject(ctx, src, layout.BlobKey(digest.FromBytes(good)), good)
	rotten := digest.FromString("config bytes")
	_ = transfertest.WriteObject(ctx, src, layout.BlobKey(rotten), []byte("CONFIG BYTES"))

	copier, err := gcscopy.New(src, dst)
	if err != nil {
		panic(err)
	}
	tr, _ := transfer.New(src, dst, transfer.Options{ServerSide: copier})
	res, err := tr.Transfer(ctx, digest.FromBytes(good))
	fmt.Println(res.Method(), res.HostBytes, err)
	_, err = tr.Transfer(ctx, rotten)
	fmt.Println(errors.Is(err, transfer.ErrCorruptAtRest))
	// Output:
	// server-side 11 <nil>
	// true
}
