package faultblob

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/ferryhq/ferry/internal/wait"
)

// Options configures Wrap. The zero value passes everything through.
type Options struct {
	// Latency is added to every operation: opening a reader, committing a
	// writer, reading attributes, listing a page, copying and deleting.
	// The wait honours the operation's context.
	Latency time.Duration
	// Inject picks faults. Nil injects none.
	Inject Injector
	// SlowReadDelay is how long a SlowRead stalls. Default 1s.
	SlowReadDelay time.Duration
}

// Stats counts what went through a wrapped bucket. It is safe for
// concurrent use.
type Stats struct {
	ops          sync.Map // Op -> *atomic.Int64
	faults       atomic.Int64
	bytesRead    atomic.Int64
	bytesWritten atomic.Int64
}

// Ops returns how many times op was called.
func (s *Stats) Ops(op Op) int64 {
	if v, ok := s.ops.Load(op); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Faults returns how many faults were injected.
func (s *Stats) Faults() int64 { return s.faults.Load() }

// BytesRead returns how many bytes readers delivered.
func (s *Stats) BytesRead() int64 { return s.bytesRead.Load() }

// BytesWritten returns how many bytes were handed to writers (committed
// or not).
func (s *Stats) BytesWritten() int64 { return s.bytesWritten.Load() }

func (s *Stats) count(op Op) {
	v, _ := s.ops.LoadOrStore(op, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Wrap returns a bucket that forwards to b with the latency and faults in
// opts, and the Stats it keeps. Closing the returned bucket does not close b.
func Wrap(b *blob.Bucket, opts Options) (*blob.Bucket, *Stats) {
	st := &Stats{}
	return blob.NewBucket(&bucket{inner: b, opts: opts, stats: st}), st
}

type bucket struct {
	inner *blob.Bucket
	opts  Options
	stats *Stats
	calls sync.Map // op+"\x00"+key -> *atomic.Int64
	// corruptions counts CorruptRead faults, to move the flipped byte.
	corruptions atomic.Int64
}

// before applies latency and decides the fault for one operation. It
// returns an error for faults that fail the operation outright.
func (b *bucket) before(ctx context.Context, op Op, key string) (Fault, error) {
	b.stats.count(op)
	if b.opts.Latency > 0 {
		if err := wait.Sleep(ctx, b.opts.Latency); err != nil {
			return None, err
		}
	}
	if b.opts.Inject == nil {
		return None, nil
	}
	v, _ := b.calls.LoadOrStore(string(op)+"\x00"+key, new(atomic.Int64))
	f := b.opts.Inject(op, key, int(v.(*atomic.Int64).Add(1)))
	switch {
	case f == None:
		return None, nil
	case f == TruncateRead || f == ResetRead || f == CorruptRead || f == SlowRead:
		if op != OpRead {
			return None, nil
		}
		b.stats.faults.Add(1)
		return f, nil
	case f == LostAck:
		if op != OpWrite {
			return None, nil
		}
		b.stats.faults.Add(1)
		return f, nil
	default:
		b.stats.faults.Add(1)
		return f, &Error{Op: op, Key: key, Status: f.status()}
	}
}

func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode {
	var fe *Error
	if errors.As(err, &fe) {
		switch fe.Status {
		case 429:
			return gcerrors.ResourceExhausted
		case 500:
			return gcerrors.Internal
		case 408:
			return gcerrors.DeadlineExceeded
		}
		// Like gcsblob, there is no portable code for 503.
		return gcerrors.Unknown
	}
	return gcerrors.Code(err)
}

func (b *bucket) As(i any) bool { return b.inner.As(i) }

func (b *bucket) ErrorAs(err error, i any) bool {
	if p, ok := i.(**Error); ok {
		return errors.As(err, p)
	}
	return b.inner.ErrorAs(err, i)
}

func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if _, err := b.before(ctx, OpAttributes, key); err != nil {
		return nil, err
	}
	a, err := b.inner.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{
		CacheControl:       a.CacheControl,
		ContentDisposition: a.ContentDisposition,
		ContentEncoding:    a.ContentEncoding,
		ContentLanguage:    a.ContentLanguage,
		ContentType:        a.ContentType,
		Metadata:           a.Metadata,
		CreateTime:         a.CreateTime,
		ModTime:            a.ModTime,
		Size:               a.Size,
		MD5:                a.MD5,
		ETag:               a.ETag,
		AsFunc:             a.As,
	}, nil
}

func (b *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if _, err := b.before(ctx, OpList, opts.Prefix); err != nil {
		return nil, err
	}
	token := opts.PageToken
	if token == nil {
		token = blob.FirstPageToken
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	objs, next, err := b.inner.ListPage(ctx, token, size, &blob.ListOptions{
		Prefix:     opts.Prefix,
		Delimiter:  opts.Delimiter,
		BeforeList: opts.BeforeList,
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, o := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{
			Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir, AsFunc: o.As,
		})
	}
	return page, nil
}

func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	f, err := b.before(ctx, OpRead, key)
	if err != nil {
		return nil, err
	}
	r, err := b.inner.NewRangeReader(ctx, key, offset, length, &blob.ReaderOptions{BeforeRead: opts.BeforeRead})
	if err != nil {
		return nil, err
	}
	want := length
	if want < 0 {
		want = r.Size() - offset
	}
	stall := b.opts.SlowReadDelay
	if stall <= 0 {
		stall = time.Second
	}
	cut := want / 2
	if f == CorruptRead && want > 0 {
		// Damage in transit lands somewhere else each time.
		cut = (want/2 + (b.corruptions.Add(1)-1)*7919) % want
	}
	return &reader{ctx: ctx, r: r, key: key, fault: f, cut: cut, stall: stall, stats: b.stats}, nil
}

func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	// The inner writer gets its own cancelable context so an injected
	// commit failure can abort it, just as cancelling ctx does.
	ictx, cancel := context.WithCancel(ctx)
	w, err := b.inner.NewWriter(ictx, key, &blob.WriterOptions{
		BufferSize:                  opts.BufferSize,
		MaxConcurrency:              opts.MaxConcurrency,
		CacheControl:                opts.CacheControl,
		ContentDisposition:          opts.ContentDisposition,
		ContentEncoding:             opts.ContentEncoding,
		ContentLanguage:             opts.ContentLanguage,
		ContentType:                 contentType,
		ContentMD5:                  opts.ContentMD5,
		Metadata:                    opts.Metadata,
		BeforeWrite:                 opts.BeforeWrite,
		DisableContentTypeDetection: opts.DisableContentTypeDetection || contentType == "",
		IfNotExist:                  opts.IfNotExist,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return &writer{b: b, ctx: ctx, cancel: cancel, w: w, key: key}, nil
}

func (b *bucket) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	if _, err := b.before(ctx, OpCopy, dstKey); err != nil {
		return err
	}
	return b.inner.Copy(ctx, dstKey, srcKey, &blob.CopyOptions{BeforeCopy: opts.BeforeCopy})
}

func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if _, err := b.before(ctx, OpDelete, key); err != nil {
		return err
	}
	var do *blob.DeleteOptions
	if opts != nil {
		do = &blob.DeleteOptions{BeforeDelete: opts.BeforeDelete}
	}
	return b.inner.DeleteWithOptions(ctx, key, do)
}

func (b *bucket) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return b.inner.SignedURL(ctx, key, &blob.SignedURLOptions{
		Expiry:                   opts.Expiry,
		Method:                   opts.Method,
		ContentType:              opts.ContentType,
		EnforceAbsentContentType: opts.EnforceAbsentContentType,
		BeforeSign:               opts.BeforeSign,
	})
}

func (b *bucket) Close() error { return nil }

// reader applies a read fault once `cut` bytes have been delivered.
type reader struct {
	ctx   context.Context
	r     *blob.Reader
	key   string
	fault Fault
	cut   int64
	pos   int64
	stall time.Duration
	stats *Stats
}

func (r *reader) Read(p []byte) (int, error) {
	if r.fault == SlowRead {
		if r.pos >= r.cut {
			r.fault = None // stall once
			if err := wait.Sleep(r.ctx, r.stall); err != nil {
				return 0, err
			}
		} else {
			p = p[:min(int64(len(p)), r.cut-r.pos)]
		}
	}
	if r.fault == TruncateRead || r.fault == ResetRead {
		if r.pos >= r.cut {
			if r.fault == TruncateRead {
				return 0, io.EOF
			}
			return 0, &Error{Op: OpRead, Key: r.key, Status: r.fault.status()}
		}
		p = p[:min(int64(len(p)), r.cut-r.pos)]
	}
	n, err := r.r.Read(p)
	if r.fault == CorruptRead && r.pos <= r.cut && r.cut < r.pos+int64(n) {
		p[r.cut-r.pos] ^= 0xff
	}
	r.pos += int64(n)
	r.stats.bytesRead.Add(int64(n))
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

func (r *reader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.r.ContentType(), ModTime: r.r.ModTime(), Size: r.r.Size()}
}

func (r *reader) As(i any) bool { return r.r.As(i) }

// writer delays and possibly fails the commit of an upload.
type writer struct {
	b      *bucket
	ctx    context.Context
	cancel context.CancelFunc
	w      *blob.Writer
	key    string
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.b.stats.bytesWritten.Add(int64(n))
	return n, err
}

func (w *writer) Close() error {
	defer w.cancel()
	f, err := w.b.before(w.ctx, OpWrite, w.key)
	if err != nil {
		w.cancel() // abort: nothing lands
		return errors.Join(err, ignoreCanceled(w.w.Close()))
	}
	if f == LostAck {
		if err := w.w.Close(); err != nil {
			return err
		}
		return &Error{Op: OpWrite, Key: w.key, Status: f.status()}
	}
	return w.w.Close()
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
