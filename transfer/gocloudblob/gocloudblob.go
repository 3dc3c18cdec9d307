package gocloudblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/ferryhq/ferry/internal/cloudstatus"
	"github.com/ferryhq/ferry/transfer"
)

// Options configures NewWithOptions. The zero value is New's.
type Options struct {
	// LeftoverAge is how old a temporary file that an interrupted
	// fileblob write left next to a key must be before a write of that
	// key removes it, so that writes in progress are spared. Default one
	// hour.
	LeftoverAge time.Duration
	// Logger is told about removed leftovers. Default: discard.
	Logger *slog.Logger
}

const (
	defaultLeftoverAge = time.Hour
	defaultPageSize    = 1000
)

// Bucket is a transfer.Bucket over a *blob.Bucket. It does not own the
// *blob.Bucket: closing it stays the caller's job. It is safe for
// concurrent use.
type Bucket struct {
	b    *blob.Bucket
	opts Options
}

var _ transfer.Bucket = (*Bucket)(nil)

// New returns b as a transfer.Bucket with the default Options.
func New(b *blob.Bucket) *Bucket { return NewWithOptions(b, Options{}) }

// NewWithOptions returns b as a transfer.Bucket.
func NewWithOptions(b *blob.Bucket, opts Options) *Bucket {
	if opts.LeftoverAge <= 0 {
		opts.LeftoverAge = defaultLeftoverAge
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Bucket{b: b, opts: opts}
}

// Blob returns the adapted bucket.
func (b *Bucket) Blob() *blob.Bucket { return b.b }

// Unwrap returns the *blob.Bucket behind b: b's own if b is a *Bucket, or
// the one behind what b's Unwrap() transfer.Bucket method returns (as
// wrappers such as faultblob's have), recursively. ok is false when there
// is none.
func Unwrap(b transfer.Bucket) (_ *blob.Bucket, ok bool) {
	for b != nil {
		switch v := b.(type) {
		case *Bucket:
			return v.b, v.b != nil
		case interface{ Unwrap() transfer.Bucket }:
			b = v.Unwrap()
		default:
			return nil, false
		}
	}
	return nil, false
}

// NewReader implements transfer.Bucket.
func (b *Bucket) NewReader(ctx context.Context, key string) (transfer.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := b.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, wrapErr(err)
	}
	return &reader{r: r}, nil
}

// NewWriter implements transfer.Bucket. fileblob's temporary-file
// leftovers of key are swept on Close (see Options.LeftoverAge).
func (b *Bucket) NewWriter(ctx context.Context, key string, opts transfer.WriterOptions) (transfer.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w := &writer{b: b, key: key}
	bw, err := b.b.NewWriter(ctx, key, &blob.WriterOptions{
		ContentType: ct,
		Metadata:    opts.Metadata,
		BeforeWrite: w.recordTempDir,
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	w.w = bw
	return w, nil
}

// Attributes implements transfer.Bucket.
func (b *Bucket) Attributes(ctx context.Context, key string) (transfer.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return transfer.Attributes{}, err
	}
	a, err := b.b.Attributes(ctx, key)
	if err != nil {
		return transfer.Attributes{}, wrapErr(err)
	}
	return transfer.Attributes{Size: a.Size, ModTime: a.ModTime, Metadata: a.Metadata}, nil
}

// List implements transfer.Bucket.
func (b *Bucket) List(ctx context.Context, opts transfer.ListOptions) (transfer.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return transfer.ListPage{}, err
	}
	token := blob.FirstPageToken
	if opts.PageToken != "" {
		token = []byte(opts.PageToken)
	}
	size := opts.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	objs, next, err := b.b.ListPage(ctx, token, size, &blob.ListOptions{Prefix: opts.Prefix, Delimiter: opts.Delimiter})
	if err != nil && !errors.Is(err, io.EOF) {
		return transfer.ListPage{}, wrapErr(err)
	}
	page := transfer.ListPage{Objects: make([]transfer.ListObject, len(objs)), NextPageToken: string(next)}
	for i, o := range objs {
		page.Objects[i] = transfer.ListObject{Key: o.Key, IsDir: o.IsDir, Size: o.Size, ModTime: o.ModTime}
	}
	return page, nil
}

// Delete implements transfer.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrapErr(b.b.Delete(ctx, key))
}

// wrapErr translates a gocloud error to transfer.Bucket's contract.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%w: %w", transfer.ErrNotExist, err)
	}
	return cloudstatus.Wrap(err)
}

// reader holds the *blob.Reader in a named field and forwards only
// transfer.Reader's methods: embedding it would expose its WriteTo, and
// io.Copy would then read past Read's error wrapping (NotFound would not
// become transfer.ErrNotExist, a 503 would lose its status). It also makes
// Read after Close an error: memblob's and gcsblob's readers go on reading.
type reader struct {
	r      *blob.Reader
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("gocloudblob: read after Close: %w", fs.ErrClosed)
	}
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = wrapErr(err)
	}
	return n, err
}

func (r *reader) Size() int64        { return r.r.Size() }
func (r *reader) ModTime() time.Time { return r.r.ModTime() }

func (r *reader) Close() error {
	r.closed = true
	return wrapErr(r.r.Close())
}

type writer struct {
	b       *Bucket
	key     string
	w       *blob.Writer
	tempDir string // fileblob's temporary file's directory, if any
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	return n, wrapErr(err)
}

func (w *writer) Close() error {
	w.sweep()
	return wrapErr(w.w.Close())
}

// recordTempDir is a BeforeWrite hook that records the directory of the
// writer's temporary file. Only fileblob exposes an *os.File; other
// drivers leave tempDir empty, so sweeping costs them nothing.
func (w *writer) recordTempDir(as func(any) bool) error {
	var f *os.File
	if as(&f) && f != nil {
		w.tempDir = filepath.Dir(f.Name())
	}
	return nil
}

// sweep removes stale temporary files of w.key that earlier interrupted
// writes left next to it. Temporary files in os.TempDir() (fileblob's
// default) are outside the bucket and not ours to judge.
func (w *writer) sweep() {
	dir := w.tempDir
	if dir == "" || !strings.HasSuffix(filepath.ToSlash(dir), path.Dir(w.key)) {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	base := path.Base(w.key) + "."
	cutoff := time.Now().Add(-w.b.opts.LeftoverAge)
	for _, e := range entries {
		if !isLeftoverOf(e.Name(), base) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			file := filepath.Join(dir, e.Name())
			if err := os.Remove(file); err == nil {
				w.b.opts.Logger.Info("gocloudblob: removed a leftover of an interrupted write", "file", file)
			}
		}
	}
}

// isLeftoverOf reports whether name is "<base><hex>.tmp", fileblob's name
// for a temporary file of the key whose base name is base minus its dot.
func isLeftoverOf(name, base string) bool {
	mid, ok := strings.CutPrefix(name, base)
	if !ok {
		return false
	}
	mid, ok = strings.CutSuffix(mid, ".tmp")
	if !ok || mid == "" {
		return false
	}
	for _, c := range mid {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
