package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing/fstest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// dirBucket is a read-only transfer.Bucket over a file system: the kind of
// small implementation a registry writes over its own storage driver
// (here an fs.FS, such as os.DirFS of a registry's filesystem root), with
// no gocloud dependency. A writable one is checked with
// transfertest.BucketSuite.
type dirBucket struct{ fsys fs.FS }

var errReadOnly = errors.New("dirBucket: read-only")

func (b dirBucket) notExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", transfer.ErrNotExist, err)
	}
	return err
}

func (b dirBucket) NewReader(_ context.Context, key string) (transfer.Reader, error) {
	f, err := b.fsys.Open(key)
	if err != nil {
		return nil, b.notExist(err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return fileReader{File: f, info: info}, nil
}

func (b dirBucket) Attributes(_ context.Context, key string) (transfer.Attributes, error) {
	info, err := fs.Stat(b.fsys, key)
	if err != nil {
		return transfer.Attributes{}, b.notExist(err)
	}
	return transfer.Attributes{Size: info.Size(), ModTime: info.ModTime()}, nil
}

// List returns everything in one page: directories are walked in lexical
// order, which is key order.
func (b dirBucket) List(_ context.Context, opts transfer.ListOptions) (transfer.ListPage, error) {
	var page transfer.ListPage
	root := path.Dir(opts.Prefix + "x") // the directory the prefix is in
	err := fs.WalkDir(b.fsys, root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipAll // nothing under the prefix
		}
		if err != nil || d.IsDir() || !strings.HasPrefix(p, opts.Prefix) {
			return err
		}
		rest := p[len(opts.Prefix):]
		if i := strings.Index(rest, opts.Delimiter); opts.Delimiter != "" && i >= 0 {
			dir := opts.Prefix + rest[:i+1]
			if n := len(page.Objects); n == 0 || page.Objects[n-1].Key != dir {
				page.Objects = append(page.Objects, transfer.ListObject{Key: dir, IsDir: true})
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		page.Objects = append(page.Objects, transfer.ListObject{Key: p, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	return page, err
}

func (b dirBucket) NewWriter(context.Context, string, transfer.WriterOptions) (transfer.Writer, error) {
	return nil, errReadOnly
}

func (b dirBucket) Delete(context.Context, string) error { return errReadOnly }

type fileReader struct {
	fs.File
	info fs.FileInfo
}

func (r fileReader) Size() int64        { return r.info.Size() }
func (r fileReader) ModTime() time.Time { return r.info.ModTime() }

// A registry that has its own storage driver implements transfer.Bucket
// over it and copies from (or to) it like from any other bucket.
func Example_ownBucket() {
	ctx := context.Background()
	layout, _ := transfer.NewLayout("")
	layer := []byte("a layer")
	d := digest.FromBytes(layer)
	src := dirBucket{fstest.MapFS{layout.BlobKey(d): {Data: layer}}}
	dst := transfertest.NewMemBucket()

	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		panic(err)
	}
	res, err := tr.Transfer(ctx, d)
	fmt.Println(res.Method(), res.Bytes, err)
	_, err = tr.Transfer(ctx, digest.FromString("not there"))
	fmt.Println(errors.Is(err, transfer.ErrMissingBlob))
	// Output:
	// streamed 7 <nil>
	// true
}
