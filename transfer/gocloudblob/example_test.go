package gocloudblob_test

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	"gocloud.dev/blob/memblob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
)

// A Transferer between two gocloud buckets. In a program they come from
// blob.OpenBucket(ctx, "gs://...") (import gocloud.dev/blob/gcsblob), or
// fileblob, s3blob, azureblob.
func Example() {
	ctx := context.Background()
	srcBlob, dstBlob := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer srcBlob.Close()
	defer dstBlob.Close()
	layout, _ := transfer.NewLayout("")

	layer := []byte("a layer")
	d := digest.FromBytes(layer)
	_ = srcBlob.WriteAll(ctx, layout.BlobKey(d), layer, nil)

	src, dst := gocloudblob.New(srcBlob), gocloudblob.New(dstBlob)
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		panic(err)
	}
	res, err := tr.Transfer(ctx, d)
	fmt.Println(res.Method(), res.Bytes, err)
	attrs, _ := dstBlob.Attributes(ctx, layout.BlobKey(d))
	fmt.Println(attrs.Metadata[transfer.MetadataDigest] == d.String())
	// Output:
	// streamed 7 <nil>
	// true
}
