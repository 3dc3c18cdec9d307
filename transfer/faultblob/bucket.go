package faultblob

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/internal/wait"
	"github.com/ferryhq/ferry/transfer"
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
// opts, and the Stats it keeps. Its Unwrap method returns b.
func Wrap(b transfer.Bucket, opts Options) (*Bucket, *Stats) {
	st := &Stats{}
	return &Bucket{inner: b, opts: opts, stats: st}, st
}

// Bucket is a transfer.Bucket that forwards to another with latency and
// injected faults. It is safe for concurrent use.
type Bucket struct {
	inner transfer.Bucket
	opts  Options
	stats *Stats
	calls sync.Map // op+"\x00"+key -> *atomic.Int64
	// corruptions counts CorruptRead faults, to move the flipped byte.
	corruptions atomic.Int64
}

var _ transfer.Bucket = (*Bucket)(nil)

// Unwrap returns the wrapped bucket.
func (b *Bucket) Unwrap() transfer.Bucket { return b.inner }

// before applies latency and decides the fault for one operation. It
// returns an error for faults that fail the operation outright.
func (b *Bucket) before(ctx context.Context, op Op, key string) (Fault, error) {
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

// Attributes implements transfer.Bucket.
func (b *Bucket) Attributes(ctx context.Context, key string) (transfer.Attributes, error) {
	if _, err := b.before(ctx, OpAttributes, key); err != nil {
		return transfer.Attributes{}, err
	}
	return b.inner.Attributes(ctx, key)
}

// List implements transfer.Bucket.
func (b *Bucket) List(ctx context.Context, opts transfer.ListOptions) (transfer.ListPage, error) {
	if _, err := b.before(ctx, OpList, opts.Prefix); err != nil {
		return transfer.ListPage{}, err
	}
	return b.inner.List(ctx, opts)
}

// NewReader implements transfer.Bucket.
func (b *Bucket) NewReader(ctx context.Context, key string) (transfer.Reader, error) {
	f, err := b.before(ctx, OpRead, key)
	if err != nil {
		return nil, err
	}
	r, err := b.inner.NewReader(ctx, key)
	if err != nil {
		return nil, err
	}
	want := r.Size()
	stall := b.opts.SlowReadDelay
	if stall <= 0 {
		stall = time.Second
	}
	cut := want / 2
	if f == CorruptRead && want > 0 {
		// Damage in transit lands somewhere else each time.
		cut = (want/2 + (b.corruptions.Add(1)-1)*7919) % want
	}
	return &reader{ctx: ctx, Reader: r, key: key, fault: f, cut: cut, stall: stall, stats: b.stats}, nil
}

// NewWriter implements transfer.Bucket.
func (b *Bucket) NewWriter(ctx context.Context, key string, opts transfer.WriterOptions) (transfer.Writer, error) {
	// The inner writer gets its own cancelable context so an injected
	// commit failure can abort it, just as cancelling ctx does.
	ictx, cancel := context.WithCancel(ctx)
	w, err := b.inner.NewWriter(ictx, key, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	return &writer{b: b, ctx: ctx, cancel: cancel, w: w, key: key}, nil
}

// Delete implements transfer.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if _, err := b.before(ctx, OpDelete, key); err != nil {
		return err
	}
	return b.inner.Delete(ctx, key)
}

// reader applies a read fault once `cut` bytes have been delivered.
type reader struct {
	transfer.Reader
	ctx   context.Context
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
	n, err := r.Reader.Read(p)
	if r.fault == CorruptRead && r.pos <= r.cut && r.cut < r.pos+int64(n) {
		p[r.cut-r.pos] ^= 0xff
	}
	r.pos += int64(n)
	r.stats.bytesRead.Add(int64(n))
	return n, err
}

// writer delays and possibly fails the commit of an upload.
type writer struct {
	b      *Bucket
	ctx    context.Context
	cancel context.CancelFunc
	w      transfer.Writer
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
