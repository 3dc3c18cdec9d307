package transfer_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"testing"

	"gocloud.dev/blob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// A final import repeated after tags were deleted or moved in the source
// ends with the tags a one-pass import of the final source has (on
// MemSink and LayoutSink), and reports the ones it removed.
func TestRerunAfterTagsDeletedOrMovedConverges(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(17))
	l := reg.Layout

	var repo *transfertest.Repository
	for i := range reg.Repositories {
		if len(reg.Repositories[i].Tags) >= 3 {
			repo = &reg.Repositories[i]
			break
		}
	}
	if repo == nil {
		t.Fatal("no repository with three tags")
	}
	memSink, dst := transfertest.NewMemSink(), memBucket(t)
	layoutSink := transfer.NewLayoutSink(dst, l, fastRetry)
	importInto := func(sink transfer.Sink, b *blob.Bucket) *transfer.Report {
		t.Helper()
		rep, err := newImporter(t, src, mustNew(t, src, b, transfer.Options{}), sink, transfer.ImportOptions{}).Import(ctx, repo.Name)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	importInto(memSink, memBucket(t))
	importInto(layoutSink, dst)

	// Between the passes: one tag deleted, one moved to another manifest.
	deleted, moved, target := repo.Tags[0].Name, repo.Tags[1].Name, repo.Tags[2].Digest
	it := src.List(&blob.ListOptions{Prefix: l.TagPrefix(repo.Name, deleted)})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Delete(ctx, o.Key); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.WriteAll(ctx, l.TagCurrentLinkKey(repo.Name, moved), []byte(target), nil); err != nil {
		t.Fatal(err)
	}

	rep := importInto(memSink, memBucket(t))
	if got := rep.Repositories[0].TagsRemoved; !slices.Equal(got, []string{deleted}) {
		t.Fatalf("TagsRemoved = %v, want [%s]", got, deleted)
	}
	importInto(layoutSink, dst)

	fresh := transfertest.NewMemSink()
	importInto(fresh, memBucket(t))
	want := fresh.State()[repo.Name].Tags
	if got := memSink.State()[repo.Name].Tags; !maps.Equal(got, want) {
		t.Fatalf("MemSink tags after two passes = %v, one pass = %v", got, want)
	}
	got, err := layoutSink.Tags(ctx, repo.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("LayoutSink tags after two passes = %v, one pass = %v", got, want)
	}
	if _, ok := want[deleted]; ok || want[moved] != target {
		t.Fatalf("one-pass tags %v: the source change did not take", want)
	}
}
