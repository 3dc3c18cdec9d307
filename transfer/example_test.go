package transfer_test

import (
	"context"
	"errors"
	"fmt"

	"gocloud.dev/blob/memblob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
)

func ExampleNew() {
	ctx := context.Background()
	// Any gocloud bucket (gcsblob, s3blob, fileblob, ...) through the
	// gocloudblob adapter, or a transfer.Bucket of the host's own.
	srcBlob, dstBlob := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer srcBlob.Close()
	defer dstBlob.Close()
	src, dst := gocloudblob.New(srcBlob), gocloudblob.New(dstBlob)
	layout, _ := transfer.NewLayout("") // docker/registry/v2

	layer := []byte("a layer")
	d := digest.FromBytes(layer)
	_ = transfertest.WriteObject(ctx, src, layout.BlobKey(d), layer)

	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		panic(err)
	}
	res, err := tr.Transfer(ctx, d)
	fmt.Println(res.Method(), res.Bytes, err)
	res, err = tr.Transfer(ctx, d)
	fmt.Println(res.Method(), res.Bytes, err)

	// A blob whose bytes do not match its digest is refused.
	_ = transfertest.WriteObject(ctx, src, layout.BlobKey(d), []byte("a layor"))
	_ = dst.Delete(ctx, layout.BlobKey(d))
	_, err = tr.Transfer(ctx, d)
	landed, _ := transfertest.Exists(ctx, dst, layout.BlobKey(d))
	fmt.Println(errors.Is(err, transfer.ErrCorrupt), landed)
	// Output:
	// streamed 7 <nil>
	// skipped 7 <nil>
	// true false
}

func ExampleSemverTags() {
	var tags []transfer.Tag
	for _, name := range []string{"build-7", "v1.4.0", "latest", "feature-x", "2.0.0-rc.1"} {
		tags = append(tags, transfer.Tag{Name: name}) // same ModTime: newest is the greatest name
	}
	transfer.SortTagsNewestFirst(tags)
	for _, t := range transfer.SemverTags(4).SelectTags("group/app", tags) {
		fmt.Println(t.Name)
	}
	// Output:
	// v1.4.0
	// latest
	// feature-x
	// 2.0.0-rc.1
}

func ExampleImporter() {
	ctx := context.Background()
	src, dst := transfertest.NewMemBucket(), transfertest.NewMemBucket()
	reg, err := transfertest.Generate(ctx, src, transfertest.SmallSpec(1))
	if err != nil {
		panic(err)
	}
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		panic(err)
	}
	sink := transfertest.NewMemSink()
	im, err := transfer.NewImporter(src, tr, sink, transfer.ImportOptions{Tags: transfer.SemverTags(3)})
	if err != nil {
		panic(err)
	}
	if _, err := im.PreImport(ctx); err != nil {
		panic(err)
	}
	rep, err := im.Import(ctx)
	if err != nil {
		panic(err)
	}
	_, _, tags := sink.State().Counts()
	fmt.Printf("%d repositories imported, %d tags, %d blobs copied by the final pass\n", len(rep.Repositories), tags, rep.BlobsCopied)
	fmt.Println("matches layout:", transfertest.Diff(reg.Expect(transfertest.ExpectOptions{Tags: transfer.SemverTags(3), Pass: transfer.FinalImport}), sink.State()) == "")
	// Output:
	// 7 repositories imported, 31 tags, 0 blobs copied by the final pass
	// matches layout: true
}

// WithProgress follows one pass of a shared Importer: here how far one
// repository's pre-import has got, as an import server reports it.
func ExampleWithProgress() {
	ctx := context.Background()
	src, dst := transfertest.NewMemBucket(), transfertest.NewMemBucket()
	reg, err := transfertest.Generate(ctx, src, transfertest.SmallSpec(1))
	if err != nil {
		panic(err)
	}
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		panic(err)
	}
	im, err := transfer.NewImporter(src, tr, transfertest.NewMemSink(), transfer.ImportOptions{})
	if err != nil {
		panic(err)
	}
	repo := reg.Repositories[0].Name
	var planned transfer.Planned
	done := 0
	pctx := transfer.WithProgress(ctx, func(p transfer.Progress) {
		switch p.Kind {
		case transfer.EventRepositoryPlanned:
			planned = *p.Planned
		case transfer.EventBlobDone, transfer.EventManifestDone, transfer.EventTagDone:
			done++ // one call at a time: no lock needed here
		}
	})
	if _, err := im.PreImport(pctx, repo); err != nil {
		panic(err)
	}
	fmt.Println("every planned unit reported:", done == planned.Units() && planned.Blobs > 0, "tags in a pre-import:", planned.Tags)
	// Output:
	// every planned unit reported: true tags in a pre-import: 0
}
