package transfertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/transfer"
)

// MemBucket is an in-memory transfer.Bucket that passes BucketSuite: a
// fake for tests of code that takes a transfer.Bucket, with no gocloud
// dependency. The zero value is not usable; call NewMemBucket. It is safe
// for concurrent use.
type MemBucket struct {
	mu      sync.Mutex
	objects map[string]memObject
	now     func() time.Time
}

type memObject struct {
	data     []byte
	metadata map[string]string
	mod      time.Time
}

var _ transfer.Bucket = (*MemBucket)(nil)

// NewMemBucket returns an empty MemBucket.
func NewMemBucket() *MemBucket {
	return &MemBucket{objects: map[string]memObject{}, now: time.Now}
}

// Keys returns the keys of every stored object, sorted.
func (b *MemBucket) Keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.objects))
}

func notExist(key string) error {
	return fmt.Errorf("%w: %q", transfer.ErrNotExist, key)
}

// NewReader implements transfer.Bucket.
func (b *MemBucket) NewReader(ctx context.Context, key string) (transfer.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	o, ok := b.objects[key]
	b.mu.Unlock()
	if !ok {
		return nil, notExist(key)
	}
	return &memReader{r: bytes.NewReader(o.data), size: int64(len(o.data)), mod: o.mod}, nil
}

// NewWriter implements transfer.Bucket.
func (b *MemBucket) NewWriter(ctx context.Context, key string, opts transfer.WriterOptions) (transfer.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, fmt.Errorf("transfertest: empty key")
	}
	return &memWriter{ctx: ctx, b: b, key: key, metadata: maps.Clone(opts.Metadata)}, nil
}

// Attributes implements transfer.Bucket.
func (b *MemBucket) Attributes(ctx context.Context, key string) (transfer.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return transfer.Attributes{}, err
	}
	b.mu.Lock()
	o, ok := b.objects[key]
	b.mu.Unlock()
	if !ok {
		return transfer.Attributes{}, notExist(key)
	}
	return transfer.Attributes{Size: int64(len(o.data)), ModTime: o.mod, Metadata: maps.Clone(o.metadata)}, nil
}

// List implements transfer.Bucket. A page token is the last key of the
// page before, and the next page starts after it, so a page can be asked
// for again and deleting listed objects while paging skips none.
func (b *MemBucket) List(ctx context.Context, opts transfer.ListOptions) (transfer.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return transfer.ListPage{}, err
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	b.mu.Lock()
	var keys []string
	for k := range b.objects {
		if strings.HasPrefix(k, opts.Prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var all []transfer.ListObject
	for _, k := range keys {
		rest := k[len(opts.Prefix):]
		if opts.Delimiter != "" {
			if i := strings.Index(rest, opts.Delimiter); i >= 0 {
				dir := opts.Prefix + rest[:i+len(opts.Delimiter)]
				if n := len(all); n == 0 || all[n-1].Key != dir {
					all = append(all, transfer.ListObject{Key: dir, IsDir: true})
				}
				continue
			}
		}
		o := b.objects[k]
		all = append(all, transfer.ListObject{Key: k, Size: int64(len(o.data)), ModTime: o.mod})
	}
	b.mu.Unlock()
	// Entries are in strictly increasing key order (a directory sorts
	// before the keys it collapses and after every key before them).
	if opts.PageToken != "" {
		all = all[sort.Search(len(all), func(i int) bool { return all[i].Key > opts.PageToken }):]
	}
	var page transfer.ListPage
	if len(all) > size {
		all = all[:size]
		page.NextPageToken = all[size-1].Key
	}
	page.Objects = all
	return page, nil
}

// Delete implements transfer.Bucket.
func (b *MemBucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; !ok {
		return notExist(key)
	}
	delete(b.objects, key)
	return nil
}

// memReader holds its bytes.Reader in a field rather than embedding it,
// so that io.Copy cannot reach past Close through WriteTo.
type memReader struct {
	r      *bytes.Reader
	size   int64
	mod    time.Time
	closed bool
}

func (r *memReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("transfertest: read after Close: %w", fs.ErrClosed)
	}
	return r.r.Read(p)
}

func (r *memReader) Size() int64        { return r.size }
func (r *memReader) ModTime() time.Time { return r.mod }
func (r *memReader) Close() error       { r.closed = true; return nil }

type memWriter struct {
	ctx      context.Context
	b        *MemBucket
	key      string
	metadata map[string]string
	buf      bytes.Buffer
	closed   bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("transfertest: write to a closed writer")
	}
	return w.buf.Write(p)
}

func (w *memWriter) Close() error {
	if w.closed {
		return fmt.Errorf("transfertest: writer closed twice")
	}
	w.closed = true
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	w.b.objects[w.key] = memObject{data: bytes.Clone(w.buf.Bytes()), metadata: w.metadata, mod: w.b.now()}
	return nil
}

// WriteObject writes data to key in b in one call, as
// "application/octet-stream" with no metadata.
func WriteObject(ctx context.Context, b transfer.Bucket, key string, data []byte) error {
	return transfer.WriteAll(ctx, b, key, data, transfer.WriterOptions{ContentType: "application/octet-stream"})
}

// ReadObject reads the whole object at key in b.
func ReadObject(ctx context.Context, b transfer.Bucket, key string) ([]byte, error) {
	r, err := b.NewReader(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Exists reports whether b holds an object at key.
func Exists(ctx context.Context, b transfer.Bucket, key string) (bool, error) {
	_, err := b.Attributes(ctx, key)
	if errors.Is(err, transfer.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
