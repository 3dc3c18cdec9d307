package transfertest_test

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestVirtualRegistryImports(t *testing.T) {
	ctx := context.Background()
	src, reg := transfertest.NewVirtualRegistry(1000)
	dst, written := transfertest.DiscardBucket()
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &transfertest.NullSink{}
	im, err := transfer.NewImporter(src, tr, sink, transfer.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := im.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(reg.Repositories())
	if len(rep.Repositories) != int(n) || sink.ManifestsPut.Load() != n || sink.Tagged.Load() != n || sink.BlobsLinked.Load() != 3*n {
		t.Fatalf("imported %d repositories, %d manifests, %d tags, %d blob links; want %d, %d, %d, %d",
			len(rep.Repositories), sink.ManifestsPut.Load(), sink.Tagged.Load(), sink.BlobsLinked.Load(), n, n, n, 3*n)
	}
	if rep.BlobsCopied != 2*n+16 || written.Load() == 0 {
		t.Fatalf("copied %d blobs (%d bytes), want %d", rep.BlobsCopied, written.Load(), 2*n+16)
	}
}
