package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Transferer copies blobs of the distribution storage layout from a source
// bucket to a destination bucket.
type Transferer interface {
	// Transfer copies the blob with digest d, verifying it, and reports
	// what it did. It is idempotent: a blob already present and verified
	// at the destination (see ExistingPolicy) is skipped. A blob whose
	// content does not match its digest fails with a *CorruptError
	// (wrapping ErrCorrupt) and is not written; a blob missing from the
	// source fails with an error wrapping ErrMissingBlob; a missing bucket
	// with a *BucketError naming it. Every error names d.
	Transfer(ctx context.Context, d digest.Digest) (Result, error)
}

// Result describes one Transfer.
type Result struct {
	// Digest is the blob that was transferred.
	Digest digest.Digest
	// Bytes is the blob's size.
	Bytes int64
	// Skipped is true when the destination already held the verified blob
	// before this Transfer and nothing was copied. A copy that landed
	// although its acknowledgement was lost (and was found on a retry) is
	// not skipped.
	Skipped bool
	// ServerSide is true when the storage service copied the blob itself
	// (Options.ServerSide) and the host wrote no blob bytes.
	ServerSide bool
	// Replaced is true when the destination held an object under the
	// blob's key that failed verification and was overwritten.
	Replaced bool
	// HostBytes is how many blob bytes this process read (from either
	// bucket), all attempts included: the blob's size for a streamed copy
	// or a verified server-side copy, 0 for a trusted server-side copy of
	// a new blob.
	HostBytes int64
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

// Options configures a Transferer. The zero value is usable: streamed,
// verified copies; existing objects verified.
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
	// ServerSide, if set, copies blobs inside the storage service instead
	// of streaming them (see package transfer/gcscopy). Default: none.
	ServerSide ServerSideCopier
	// ServerSideVerify says how server-side copies are checked. Default
	// VerifySource: every blob is hashed against its digest. The other
	// mode, TrustChecksums, does not check content against the digest.
	ServerSideVerify ServerSideVerify
	// Existing says how a blob already at the destination is checked
	// before it is skipped. Default VerifyChecksum.
	Existing ExistingPolicy
	// ReportMismatched makes Transfer fail with a *CorruptError
	// (ErrCorruptAtRest, "destination") when an existing destination
	// object fails verification. By default it is replaced.
	ReportMismatched bool
	// CorruptRetries is how many more times a blob whose content did not
	// match its digest is read before the copy fails: the damage may have
	// been on the way. Default 2; negative means 0.
	CorruptRetries int
	// SourceName and DestinationName name the buckets in errors and logs
	// (for example "gs://registry-eu"). Default "source bucket" and
	// "destination bucket".
	SourceName, DestinationName string
	// Logger receives retry and verification messages. Default: discard.
	Logger *slog.Logger
	// Observer is told about every Transfer and every retry of a copy,
	// for metrics and tracing (see prommetrics). Default: none.
	Observer Observer
}

const (
	defaultBufferSize     = 1 << 20
	defaultCorruptRetries = 2
)

// New returns a Transferer that copies blobs from src to dst, streamed
// through this process and verified against their digest, or inside the
// storage service when opts.ServerSide is set.
func New(src, dst Bucket, opts Options) (Transferer, error) {
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
	switch {
	case opts.CorruptRetries == 0:
		opts.CorruptRetries = defaultCorruptRetries
	case opts.CorruptRetries < 0:
		opts.CorruptRetries = 0
	}
	if opts.SourceName == "" {
		opts.SourceName = "source bucket"
	}
	if opts.DestinationName == "" {
		opts.DestinationName = "destination bucket"
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
	return t, nil
}

type transferer struct {
	src, dst Bucket
	layout   Layout
	opts     Options
	retry    RetryPolicy
	log      *slog.Logger
	bufs     sync.Pool
}

// copyState is what one Transfer carries from attempt to attempt.
type copyState struct {
	d   digest.Digest
	key string
	res Result
	// wrote is set once an attempt may have committed a copy, so that
	// finding the blob on a later attempt counts as copied, not skipped.
	wrote bool
	// replaced is set when an existing bad object was found.
	replaced bool
	// corrupt remembers what mismatching reads returned, to tell
	// corruption at rest (the same wrong content every time) from damage
	// in transit.
	corrupt []corruptRead
	// failures counts failed attempts other than corrupt reads, bounded by
	// RetryPolicy.MaxAttempts.
	failures int
	// ss is the server-side copy's state (Options.ServerSide).
	ss *serverSideState
}

type corruptRead struct {
	got digest.Digest
	n   int64
}

func (t *transferer) Transfer(ctx context.Context, d digest.Digest) (Result, error) {
	start := time.Now()
	st := &copyState{d: d, res: Result{Digest: d}}
	ctx = t.opts.Observer.BlobStart(ctx, BlobStartEvent{Digest: d})
	if err := ValidateDigest(d); err != nil {
		t.opts.Observer.BlobEnd(ctx, BlobEvent{Result: st.res, Err: err})
		return st.res, err
	}
	st.key = t.layout.BlobKey(d)
	op, attempt := "copy", t.stream
	if t.opts.ServerSide != nil {
		op, attempt = "server_side_copy", t.serverSide
	}
	// Corrupt reads have their own budget on top of the policy's attempts.
	policy := t.retry
	policy.MaxAttempts += t.opts.CorruptRetries
	attempts, err := policy.doWith(ctx, op, t.retryable(ctx, st), func(ctx context.Context) error {
		return attempt(ctx, st)
	})
	res := st.res
	res.Digest, res.Attempts, res.Duration, res.Replaced = d, attempts, time.Since(start), st.replaced
	if err != nil {
		err = fmt.Errorf("transfer %s: %w", d, t.finalCorrupt(st, err))
		res.Skipped, res.ServerSide = false, false
	}
	t.opts.Observer.BlobEnd(ctx, BlobEvent{Result: res, Err: err})
	return res, err
}

// retryable extends the RetryPolicy with a separate, bounded budget for
// content that did not match its digest: such a read is retried up to
// CorruptRetries times, whatever the policy says about ErrCorrupt.
func (t *transferer) retryable(ctx context.Context, st *copyState) func(error) bool {
	return func(err error) bool {
		var again bool
		if errors.Is(err, ErrCorruptInTransit) {
			again = len(st.corrupt) <= t.opts.CorruptRetries
		} else {
			st.failures++
			again = st.failures < t.retry.MaxAttempts && t.retry.Retryable(err)
		}
		if again {
			t.log.WarnContext(ctx, "transfer: retrying blob", slog.String("digest", st.d.String()), slog.Any("error", err))
		}
		return again
	}
}

// mismatch records a read whose content did not match st.d and returns
// the error for it, provisionally "in transit".
func (st *copyState) mismatch(object string, got digest.Digest, n, want int64) error {
	st.corrupt = append(st.corrupt, corruptRead{got: got, n: n})
	detail := fmt.Sprintf("content hashes to %s", got)
	if n != want {
		detail = fmt.Sprintf("read %d bytes, object size is %d", n, want)
	}
	return &CorruptError{Digest: st.d, Where: ErrCorruptInTransit, Object: object, Detail: detail}
}

// finalCorrupt turns the last provisional "in transit" error into "at
// rest" when every mismatching read returned the same wrong content.
func (t *transferer) finalCorrupt(st *copyState, err error) error {
	ce, ok := errors.AsType[*CorruptError](err)
	if !ok || ce.Where != ErrCorruptInTransit || len(st.corrupt) < 2 {
		return err
	}
	for _, c := range st.corrupt[1:] {
		if c != st.corrupt[0] {
			ce2 := *ce
			ce2.Detail = fmt.Sprintf("%s; %d reads returned different content", ce.Detail, len(st.corrupt))
			return &ce2
		}
	}
	ce2 := *ce
	ce2.Where = ErrCorruptAtRest
	ce2.Detail = fmt.Sprintf("%s (the same on %d reads)", ce.Detail, len(st.corrupt))
	return &ce2
}

// missing reports a source object that is not there (or the source bucket
// that is not there).
func (t *transferer) missing(ctx context.Context, err error, d digest.Digest) error {
	return missingBlob(ctx, err, t.src, t.opts.SourceName, d.String())
}
