package transfer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/opencontainers/go-digest"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Transferer copies blobs of the distribution storage layout from a source
// bucket to a destination bucket.
type Transferer interface {
	// Transfer copies the blob with the given digest, verifying it, and
	// reports what it did. It is idempotent: a blob already present at the
	// destination with the right size is skipped. A blob whose content does
	// not match its digest fails with an error wrapping ErrCorrupt and is
	// not written; a blob missing from the source fails with an error
	// wrapping ErrMissingBlob.
	Transfer(ctx context.Context, d digest.Digest) (Result, error)
}

// Result describes one Transfer.
type Result struct {
	// Digest is the blob that was transferred.
	Digest digest.Digest
	// Bytes is the blob's size.
	Bytes int64
	// Skipped is true when the destination already held the blob and
	// nothing was copied.
	Skipped bool
	// ServerSide is true when the storage service copied the blob itself
	// (GCS rewrite) and no blob bytes passed through this process.
	ServerSide bool
	// Attempts is how many tries it took (1 when nothing failed).
	Attempts int
	// Duration is the wall time of the transfer, retries included.
	Duration time.Duration
}

// Method returns "skipped", "server-side" or "streamed".
func (r Result) Method() string {
	switch {
	case r.Skipped:
		return "skipped"
	case r.ServerSide:
		return "server-side"
	default:
		return "streamed"
	}
}

// Options configures a Transferer. The zero value is usable.
type Options struct {
	// Root is the layout root in both buckets. Default DefaultRoot; "/"
	// means the bucket root.
	Root string
	// Retry bounds retries of transient failures. See RetryPolicy for
	// defaults.
	Retry RetryPolicy
	// BufferSize is the chunk size of streamed copies. Blobs up to this
	// size are copied in one piece; larger ones go through a small
	// pipeline that hashes one chunk while the previous one is written.
	// Default 1 MiB.
	BufferSize int
	// DisableServerSideCopy forces streamed copies even when both buckets
	// are GCS.
	DisableServerSideCopy bool
	// Logger receives retry and verification messages. Default: discard.
	Logger *slog.Logger
	// Observer is told about every Transfer and every retry of a copy,
	// for metrics and tracing (see prommetrics). Default: none.
	Observer Observer
}

const defaultBufferSize = 1 << 20

// New returns a Transferer that copies blobs from src to dst. When both
// buckets are gcsblob buckets (and DisableServerSideCopy is false) blobs are
// copied server-side with the GCS rewrite API; otherwise they are streamed
// through this process and verified against their digest.
func New(src, dst *blob.Bucket, opts Options) (Transferer, error) {
	if src == nil || dst == nil {
		return nil, fmt.Errorf("transfer.New: source and destination buckets are required")
	}
	layout, err := NewLayout(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("transfer.New: %w", err)
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = defaultBufferSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Retry.Observer == nil {
		opts.Retry.Observer = opts.Observer
	}
	if opts.Observer == nil {
		opts.Observer = ObserverFuncs{}
	}
	t := &transferer{
		src:    src,
		dst:    dst,
		layout: layout,
		opts:   opts,
		retry:  opts.Retry.withDefaults(),
		log:    opts.Logger,
	}
	t.bufs.New = func() any { b := make([]byte, opts.BufferSize); return &b }
	if !opts.DisableServerSideCopy {
		g, err := detectGCS(src, dst)
		if err != nil {
			return nil, fmt.Errorf("transfer.New: %w", err)
		}
		t.gcs = g
	}
	return t, nil
}

type transferer struct {
	src, dst *blob.Bucket
	layout   Layout
	opts     Options
	retry    RetryPolicy
	log      *slog.Logger
	gcs      *gcsPair // nil unless both buckets are GCS
	bufs     sync.Pool
}

func (t *transferer) Transfer(ctx context.Context, d digest.Digest) (Result, error) {
	start := time.Now()
	res := Result{Digest: d}
	if err := ValidateDigest(d); err != nil {
		t.opts.Observer.BlobDone(ctx, BlobEvent{Result: res, Err: err})
		return res, err
	}
	key := t.layout.BlobKey(d)
	var err error
	if t.gcs != nil {
		res, err = t.copyServerSide(ctx, d, key)
	} else {
		res.Attempts, err = t.retry.do(ctx, "copy", func(ctx context.Context) error {
			var err error
			res, err = t.stream(ctx, d, key)
			if err != nil && IsRetryable(err) {
				t.log.WarnContext(ctx, "transfer: retrying blob", slog.String("digest", string(d)), slog.Any("error", err))
			}
			return err
		})
	}
	res.Digest = d
	res.Duration = time.Since(start)
	if err != nil {
		err = fmt.Errorf("transfer %s: %w", d, err)
	}
	t.opts.Observer.BlobDone(ctx, BlobEvent{Result: res, Err: err})
	return res, err
}

// stream makes one attempt at a streamed, verified copy.
func (t *transferer) stream(ctx context.Context, d digest.Digest, key string) (Result, error) {
	if size, ok, err := t.alreadyThere(ctx, key); err != nil || ok {
		return Result{Bytes: size, Skipped: ok}, err
	}
	r, err := t.src.NewReader(ctx, key, nil)
	if err != nil {
		return Result{}, missingOr(err, d)
	}
	defer r.Close()
	size := r.Size()

	// Cancelling wctx before Close aborts the write, so a blob that fails
	// verification never becomes visible at the destination.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var gcsWriter *storage.Writer
	w, err := t.dst.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			as(&gcsWriter)
			return nil
		},
	})
	if err != nil {
		return Result{}, err
	}
	n, got, err := t.copyHashed(wctx, w, r, size, d.Algorithm())
	if err == nil {
		err = verify(d, got, n, size)
	}
	if err != nil {
		t.abort(ctx, d, key, w, cancel, gcsWriter, err)
		return Result{}, err
	}
	if err := w.Close(); err != nil {
		return Result{}, err
	}
	return Result{Bytes: n}, nil
}

// abort stops a write that must not land.
func (t *transferer) abort(ctx context.Context, d digest.Digest, key string, w *blob.Writer, cancel context.CancelFunc, gcsWriter *storage.Writer, cause error) {
	cancel()
	if gcsWriter != nil {
		// The GCS writer notices the cancelled context in a background
		// goroutine, which can lose the race with Close and let the
		// upload finish. Failing its pipe first makes the abort certain.
		_ = gcsWriter.CloseWithError(cause) //nolint:staticcheck // see above
	}
	if w.Close() == nil {
		// The driver committed anyway. Remove the object unless it is a
		// good copy that a concurrent transfer wrote.
		t.removeIfBad(ctx, d, key)
	}
}

// removeIfBad deletes the destination object at key unless its content
// hashes to d.
func (t *transferer) removeIfBad(ctx context.Context, d digest.Digest, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	r, err := t.dst.NewReader(ctx, key, nil)
	if err != nil {
		return
	}
	h := d.Algorithm().Hash()
	_, err = io.Copy(h, r)
	_ = r.Close()
	if err == nil && digest.NewDigest(d.Algorithm(), h) == d {
		return
	}
	if err := t.dst.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		t.log.ErrorContext(ctx, "transfer: could not remove a copy that failed verification",
			slog.String("key", key), slog.Any("error", err))
	}
}

// alreadyThere reports whether dst already holds a blob of the source's
// size under key.
func (t *transferer) alreadyThere(ctx context.Context, key string) (int64, bool, error) {
	da, err := t.dst.Attributes(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	sa, err := t.src.Attributes(ctx, key)
	if err != nil {
		return 0, false, missingOr(err, "")
	}
	if da.Size != sa.Size {
		t.log.WarnContext(ctx, "transfer: destination object has the wrong size; overwriting",
			slog.String("key", key), slog.Int64("size", da.Size), slog.Int64("want", sa.Size))
		return 0, false, nil
	}
	return sa.Size, true, nil
}

func verify(d, got digest.Digest, n, size int64) error {
	switch {
	case n < size:
		return fmt.Errorf("%w: got %d of %d bytes", errTruncated, n, size)
	case n > size:
		return fmt.Errorf("%w: %s: read %d bytes, object size is %d", ErrCorrupt, d, n, size)
	case got != d:
		return fmt.Errorf("%w: %s: content hashes to %s", ErrCorrupt, d, got)
	}
	return nil
}

func missingOr(err error, d digest.Digest) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		if d == "" {
			return fmt.Errorf("%w in source: %v", ErrMissingBlob, err)
		}
		return fmt.Errorf("%w in source: %s", ErrMissingBlob, d)
	}
	return err
}
