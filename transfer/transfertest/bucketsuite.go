package transfertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/transfer"
)

// BucketSuite checks an implementation of transfer.Bucket against the
// interface's contract: reads (none after Close), what a write commits and
// when (nothing before Close, nothing after a write whose context was
// cancelled, the old object kept), metadata and sizes, ErrNotExist from
// every call about a missing object, listings with prefixes, delimiters
// and pages (also while the listed objects are deleted), deletes, empty
// objects, concurrent use and cancelled contexts (no call succeeds, no
// write commits, no delete removes). newBucket is called once per subtest
// and must return an empty bucket.
//
// It runs against transfertest.MemBucket and against transfer/gocloudblob
// over memblob, fileblob and fake-gcs-server; a registry that implements
// transfer.Bucket over its own storage driver runs it in its tests:
//
//	func TestBucket(t *testing.T) {
//		transfertest.BucketSuite(t, func(t *testing.T) transfer.Bucket { return newDriverBucket(t) })
//	}
func BucketSuite(t *testing.T, newBucket func(t *testing.T) transfer.Bucket) {
	t.Helper()
	ctx := context.Background()

	t.Run("WriteReadAttributes", func(t *testing.T) {
		b := newBucket(t)
		data := RandomBytes(7, 100_000)
		before := time.Now().Add(-time.Minute)
		meta := map[string]string{"ferry-digest": "sha256:abc", "other": "v"}
		write(t, b, "dir/obj", data, meta)
		r, err := b.NewReader(ctx, "dir/obj")
		if err != nil {
			t.Fatalf("NewReader: %v", err)
		}
		got, err := readAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, len(data))
		}
		if r.Size() != int64(len(data)) || r.ModTime().Before(before) {
			t.Fatalf("reader Size %d ModTime %v; want %d, recent", r.Size(), r.ModTime(), len(data))
		}
		a, err := b.Attributes(ctx, "dir/obj")
		if err != nil {
			t.Fatalf("Attributes: %v", err)
		}
		if a.Size != int64(len(data)) || a.ModTime.Before(before) || a.Metadata["ferry-digest"] != "sha256:abc" || a.Metadata["other"] != "v" {
			t.Fatalf("Attributes = size %d mod %v metadata %v", a.Size, a.ModTime, a.Metadata)
		}
	})

	t.Run("ReadAfterCloseIsAnError", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "k", RandomBytes(5, 100_000), nil)
		r, err := b.NewReader(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// io.EOF would pass for the object's end.
		if n, err := r.Read(make([]byte, 10)); err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("Read after Close = %d, %v; want an error other than io.EOF", n, err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "k", []byte("first version"), map[string]string{"ferry-digest": "one"})
		write(t, b, "k", []byte("second"), nil)
		if got := read(t, b, "k"); string(got) != "second" {
			t.Fatalf("read %q after overwrite", got)
		}
		if a, err := b.Attributes(ctx, "k"); err != nil || a.Size != 6 || a.Metadata["ferry-digest"] != "" {
			t.Fatalf("Attributes after overwrite = %+v, %v; want size 6 and the new (empty) metadata", a, err)
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "empty", nil, nil)
		if got := read(t, b, "empty"); len(got) != 0 {
			t.Fatalf("read %d bytes from an empty object", len(got))
		}
		if a, err := b.Attributes(ctx, "empty"); err != nil || a.Size != 0 {
			t.Fatalf("Attributes = %+v, %v", a, err)
		}
	})

	t.Run("NotExist", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "present", []byte("x"), nil)
		if _, err := b.NewReader(ctx, "absent"); !errors.Is(err, transfer.ErrNotExist) {
			t.Fatalf("NewReader of a missing object: %v, want ErrNotExist", err)
		}
		if _, err := b.Attributes(ctx, "absent"); !errors.Is(err, transfer.ErrNotExist) {
			t.Fatalf("Attributes of a missing object: %v, want ErrNotExist", err)
		}
		if err := b.Delete(ctx, "absent"); !errors.Is(err, transfer.ErrNotExist) {
			t.Fatalf("Delete of a missing object: %v, want ErrNotExist", err)
		}
		page, err := b.List(ctx, transfer.ListOptions{Prefix: "nothing/here/"})
		if err != nil || len(page.Objects) != 0 || page.NextPageToken != "" {
			t.Fatalf("List of an empty prefix = %+v, %v; want an empty last page", page, err)
		}
	})

	t.Run("NothingVisibleBeforeClose", func(t *testing.T) {
		b := newBucket(t)
		w, err := b.NewWriter(ctx, "pending", transfer.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Attributes(ctx, "pending"); !errors.Is(err, transfer.ErrNotExist) {
			t.Fatalf("Attributes before Close: %v, want ErrNotExist", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := read(t, b, "pending"); string(got) != "partial" {
			t.Fatalf("read %q after Close", got)
		}
	})

	t.Run("CancelledWriteCommitsNothing", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "kept", []byte("old content"), map[string]string{"ferry-digest": "old"})
		for _, key := range []string{"new", "kept"} {
			wctx, cancel := context.WithCancel(ctx)
			w, err := b.NewWriter(wctx, key, transfer.WriterOptions{Metadata: map[string]string{"ferry-digest": "new"}})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write(RandomBytes(3, 300_000))
			cancel()
			if err := w.Close(); err == nil {
				t.Fatalf("Close of %q after its context was cancelled returned nil, want an error", key)
			}
		}
		if _, err := b.Attributes(ctx, "new"); !errors.Is(err, transfer.ErrNotExist) {
			t.Fatalf("a cancelled write of a new key left something: %v", err)
		}
		if got := read(t, b, "kept"); string(got) != "old content" {
			t.Fatalf("a cancelled overwrite changed the object to %d bytes", len(got))
		}
		if a, err := b.Attributes(ctx, "kept"); err != nil || a.Metadata["ferry-digest"] != "old" {
			t.Fatalf("a cancelled overwrite changed the metadata: %+v, %v", a, err)
		}
	})

	t.Run("ListPrefixDelimiterPages", func(t *testing.T) {
		b := newBucket(t)
		keys := []string{"a/1", "a/2", "a/b/3", "a/c/4", "a/c/5", "ab", "z"}
		for _, k := range keys {
			write(t, b, k, []byte(k), nil)
		}
		flat := listAll(t, b, transfer.ListOptions{Prefix: "a/"})
		if want := []string{"a/1", "a/2", "a/b/3", "a/c/4", "a/c/5"}; !slices.Equal(keysOf(flat), want) {
			t.Fatalf("List(a/) = %v, want %v", keysOf(flat), want)
		}
		for _, o := range flat {
			if o.IsDir || o.Size != int64(len(o.Key)) {
				t.Fatalf("List entry %+v: want a file of %d bytes", o, len(o.Key))
			}
		}
		dirs := listAll(t, b, transfer.ListOptions{Prefix: "a/", Delimiter: "/"})
		if want := []string{"a/1", "a/2", "a/b/", "a/c/"}; !slices.Equal(keysOf(dirs), want) {
			t.Fatalf("List(a/, /) = %v, want %v", keysOf(dirs), want)
		}
		for _, o := range dirs {
			if o.IsDir != (o.Key[len(o.Key)-1] == '/') {
				t.Fatalf("List entry %+v: IsDir wrong", o)
			}
		}
		top := listAll(t, b, transfer.ListOptions{Delimiter: "/"})
		if want := []string{"a/", "ab", "z"}; !slices.Equal(keysOf(top), want) {
			t.Fatalf("List(, /) = %v, want %v", keysOf(top), want)
		}
		// Pages of 2 cover everything once, in order.
		var paged []string
		opts := transfer.ListOptions{PageSize: 2}
		for pages := 0; ; pages++ {
			if pages > len(keys) {
				t.Fatal("listing does not end")
			}
			page, err := b.List(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Objects) > 2 {
				t.Fatalf("page of %d objects, PageSize 2", len(page.Objects))
			}
			paged = append(paged, keysOf(page.Objects)...)
			if page.NextPageToken == "" {
				break
			}
			opts.PageToken = page.NextPageToken
		}
		if !slices.Equal(paged, keys) {
			t.Fatalf("paged listing = %v, want %v", paged, keys)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "d/x", []byte("x"), nil)
		write(t, b, "d/y", []byte("y"), nil)
		if err := b.Delete(ctx, "d/x"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.NewReader(ctx, "d/x"); !errors.Is(err, transfer.ErrNotExist) {
			t.Fatalf("NewReader after Delete: %v, want ErrNotExist", err)
		}
		if got := keysOf(listAll(t, b, transfer.ListOptions{Prefix: "d/"})); !slices.Equal(got, []string{"d/y"}) {
			t.Fatalf("List after Delete = %v", got)
		}
	})

	// transfer's leftovers sweep and LayoutSink's prefix delete remove
	// what ListAll yields while it pages: no object may be skipped.
	t.Run("DeleteWhilePaging", func(t *testing.T) {
		b := newBucket(t)
		for i := range 10 {
			write(t, b, fmt.Sprintf("p/%02d", i), []byte{byte(i)}, nil)
		}
		write(t, b, "q", []byte("stays"), nil)
		var seen []string
		for o, err := range transfer.ListAll(ctx, b, transfer.ListOptions{Prefix: "p/", PageSize: 3}) {
			if err != nil {
				t.Fatalf("List while deleting: %v", err)
			}
			seen = append(seen, o.Key)
			if err := b.Delete(ctx, o.Key); err != nil {
				t.Fatalf("Delete(%q): %v", o.Key, err)
			}
		}
		if len(seen) != 10 {
			t.Errorf("listing while deleting returned %v, want p/00..p/09 once each", seen)
		}
		if left := keysOf(listAll(t, b, transfer.ListOptions{})); !slices.Equal(left, []string{"q"}) {
			t.Fatalf("after deleting every listed p/ object the bucket holds %v, want [q]", left)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		b := newBucket(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Go(func() {
				key := fmt.Sprintf("c/%d", i)
				data := RandomBytes(uint64(i), 10_000+i)
				if err := WriteObject(ctx, b, key, data); err != nil {
					errs <- err
					return
				}
				got, err := ReadObject(ctx, b, key)
				if err == nil && !bytes.Equal(got, data) {
					err = fmt.Errorf("%s: read back %d bytes that differ", key, len(got))
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := listAll(t, b, transfer.ListOptions{Prefix: "c/"}); len(got) != 8 {
			t.Fatalf("List after concurrent writes: %d objects, want 8", len(got))
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		b := newBucket(t)
		write(t, b, "k", []byte("v"), nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Attributes(cctx, "k"); err == nil {
			t.Error("Attributes with a cancelled context succeeded")
		}
		if r, err := b.NewReader(cctx, "k"); err == nil {
			if _, err := readAll(r); err == nil {
				t.Error("reading with a cancelled context succeeded")
			}
		}
		if _, err := b.List(cctx, transfer.ListOptions{}); err == nil {
			t.Error("List with a cancelled context succeeded")
		}
		// A writer opened with a cancelled context commits nothing: new
		// keys stay absent, an existing object keeps its content.
		for _, key := range []string{"k", "new"} {
			if w, err := b.NewWriter(cctx, key, transfer.WriterOptions{}); err == nil {
				_, _ = w.Write([]byte("written under a cancelled context"))
				if err := w.Close(); err == nil {
					t.Errorf("NewWriter(%q) with a cancelled context: Close returned nil, want an error", key)
				}
			}
		}
		if _, err := b.Attributes(ctx, "new"); !errors.Is(err, transfer.ErrNotExist) {
			t.Errorf("a write with a cancelled context created the object: %v", err)
		}
		if err := b.Delete(cctx, "k"); err == nil {
			t.Error("Delete with a cancelled context succeeded")
		}
		if got := read(t, b, "k"); string(got) != "v" {
			t.Errorf("after a write and a delete with a cancelled context the object holds %q, want \"v\"", got)
		}
	})
}

func write(t *testing.T, b transfer.Bucket, key string, data []byte, meta map[string]string) {
	t.Helper()
	w, err := b.NewWriter(context.Background(), key, transfer.WriterOptions{Metadata: meta})
	if err != nil {
		t.Fatalf("NewWriter(%q): %v", key, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write(%q): %v", key, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close(%q): %v", key, err)
	}
}

func read(t *testing.T, b transfer.Bucket, key string) []byte {
	t.Helper()
	got, err := ReadObject(context.Background(), b, key)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return got
}

func readAll(r transfer.Reader) ([]byte, error) {
	defer r.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

func listAll(t *testing.T, b transfer.Bucket, opts transfer.ListOptions) []transfer.ListObject {
	t.Helper()
	var out []transfer.ListObject
	for o, err := range transfer.ListAll(context.Background(), b, opts) {
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		out = append(out, o)
	}
	return out
}

func keysOf(objs []transfer.ListObject) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}
