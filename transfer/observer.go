package transfer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryhq/ferry/internal/observe"
)

// Observer is told what Transferers and Importers do, for metrics and
// tracing; transfer itself depends on no metrics library (package
// prommetrics implements it with Prometheus). Calls are made synchronously
// from many goroutines at once (blobs and repositories are processed
// concurrently), so they must be quick, safe for concurrent use and must
// not block. Set it in Options.Observer (blobs, and retries of copies) and
// ImportOptions.Observer (repositories, passes, and retries of source
// reads); a RetryPolicy's Observer sees the retries of whatever uses it.
//
// Hooks follow pgx's tracer shape, like every Ferry package's: an
// operation that takes time (a pass, a repository, a blob) gets XStart,
// whose returned context the operation runs under, and XEnd, called once
// with that context. So a pass's span is the parent of its repositories'
// spans, a repository's of its blobs', and a blob's of the bucket calls
// its copy makes. Retries are single calls.
type Observer interface {
	// BlobStart is called when a Transfer begins; the copy (its bucket
	// calls and retries) runs under the context it returns.
	BlobStart(ctx context.Context, e BlobStartEvent) context.Context
	// BlobEnd is called after every Transfer, whatever the outcome, with
	// the context BlobStart returned.
	BlobEnd(ctx context.Context, e BlobEvent)
	// Retried is called when a storage operation failed with a retryable
	// error and is about to be tried again.
	Retried(ctx context.Context, e RetryEvent)
	// RepositoryStart is called when an Importer begins a repository; the
	// repository's reads, writes and Transfers run under the context it
	// returns.
	RepositoryStart(ctx context.Context, e RepositoryStartEvent) context.Context
	// RepositoryEnd is called when an Importer has finished a
	// repository, successfully or not, with the context RepositoryStart
	// returned.
	RepositoryEnd(ctx context.Context, e RepositoryEvent)
	// PassStart is called when a PreImport or Import begins; the pass
	// runs under the context it returns.
	PassStart(ctx context.Context, e PassStartEvent) context.Context
	// PassEnd is called at the end of every PreImport and Import, with
	// the context PassStart returned.
	PassEnd(ctx context.Context, e PassEvent)
}

// BlobStartEvent describes a Transfer about to begin.
type BlobStartEvent struct {
	// Digest is the blob's digest (unbounded: fine on a trace span, never
	// a metric label).
	Digest digest.Digest
}

// RepositoryStartEvent describes a repository an Importer is about to
// import.
type RepositoryStartEvent struct {
	Pass Pass
	// Name is the repository's path (unbounded: never a metric label).
	Name string
}

// PassStartEvent describes a pass about to begin.
type PassStartEvent struct {
	Pass Pass
	// Repositories are the repositories named; empty when the pass
	// imports every repository it finds.
	Repositories []string
}

// BlobEvent describes one Transfer that ended.
type BlobEvent struct {
	// Result says what was done; Result.Method() is "skipped",
	// "server-side" or "streamed". Result.Digest is unbounded: fine on a
	// trace span, never a metric label.
	Result Result
	// Err is Transfer's error; it wraps ErrCorrupt (with
	// ErrCorruptInTransit or ErrCorruptAtRest), ErrMissingBlob,
	// ErrBucketNotFound, ErrInvalidDigest or a context error when one of
	// them applies.
	Err error
}

// RetryCause classifies why a storage operation was retried. There are no
// others, so they are safe as metric label values.
type RetryCause string

// The causes of a retry, from ClassifyRetry.
const (
	// RetryThrottled: HTTP 429 or a resource-exhausted code: the service
	// asks for less.
	RetryThrottled RetryCause = "throttled"
	// RetryServerError: HTTP 5xx, or an internal, unavailable or aborted
	// code.
	RetryServerError RetryCause = "server_error"
	// RetryTimeout: HTTP 408, a deadline-exceeded code or a network
	// timeout.
	RetryTimeout RetryCause = "timeout"
	// RetryTruncated: a read ended before the object did.
	RetryTruncated RetryCause = "truncated"
	// RetryConnection: the connection was reset or broken.
	RetryConnection RetryCause = "connection"
	// RetryCorrupt: content did not match its digest or a storage
	// client's checksum, probably damaged in transit; retried under
	// Options.CorruptRetries.
	RetryCorrupt RetryCause = "corrupt"
	// RetrySourceChanged: the source object was replaced during the copy.
	RetrySourceChanged RetryCause = "source_changed"
	// RetryOther: anything else a custom RetryPolicy.Retryable retries.
	RetryOther RetryCause = "other"
)

// ClassifyRetry returns the cause of a retryable error, in the terms of
// IsRetryable.
func ClassifyRetry(err error) RetryCause {
	switch {
	case errors.Is(err, ErrCorrupt), isClientChecksumError(err), isGarbledResponse(err):
		return RetryCorrupt
	case errors.Is(err, ErrSourceChanged):
		return RetrySourceChanged
	case errors.Is(err, errTruncated), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return RetryTruncated
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return RetryConnection
	}
	if code, ok := httpStatus(err); ok {
		switch {
		case code == http.StatusTooManyRequests:
			return RetryThrottled
		case code == http.StatusRequestTimeout:
			return RetryTimeout
		case code >= 500:
			return RetryServerError
		}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return RetryTimeout
	}
	return RetryOther
}

// RetryEvent describes one retry.
type RetryEvent struct {
	// Op names the operation: "copy", "server_side_copy", "read", "stat",
	// "list" or "write".
	Op    string
	Cause RetryCause
	// Attempt is the attempt that failed (1 for the first).
	Attempt int
	// Wait is the backoff before the next attempt.
	Wait time.Duration
	// Err is the failure.
	Err error
}

// RepositoryOutcome classifies how an Importer finished a repository.
// There are no others, so they are safe as metric label values.
type RepositoryOutcome string

// The outcomes of a repository.
const (
	// RepositoryImported: the pass completed for the repository.
	RepositoryImported RepositoryOutcome = "imported"
	// RepositoryFailed: it failed (RepositoryEvent.Report.Err says why).
	RepositoryFailed RepositoryOutcome = "failed"
	// RepositoryTooLarge: skipped for having more than MaxTags tags.
	RepositoryTooLarge RepositoryOutcome = "too_large"
	// RepositoryDryRun: read and validated only (ImportOptions.DryRun).
	RepositoryDryRun RepositoryOutcome = "dry_run"
)

// RepositoryEvent describes one repository of a pass.
type RepositoryEvent struct {
	Pass    Pass
	Outcome RepositoryOutcome
	// Report is the repository's report; Report.Name is its path
	// (unbounded: never a metric label) and Report.Duration how long it
	// took.
	Report RepositoryReport
}

// PassEvent describes one pass of an Importer.
type PassEvent struct {
	// Report is the pass's report; nil when the repositories could not
	// even be listed.
	Report *Report
	Pass   Pass
	// Duration is how long the pass took.
	Duration time.Duration
	Err      error
}

// ObserverFuncs is an Observer made of optional functions; nil ones are
// skipped (a nil XStart returns its context). The zero value observes
// nothing.
type ObserverFuncs struct {
	OnBlobStart       func(ctx context.Context, e BlobStartEvent) context.Context
	OnBlobEnd         func(ctx context.Context, e BlobEvent)
	OnRetried         func(ctx context.Context, e RetryEvent)
	OnRepositoryStart func(ctx context.Context, e RepositoryStartEvent) context.Context
	OnRepositoryEnd   func(ctx context.Context, e RepositoryEvent)
	OnPassStart       func(ctx context.Context, e PassStartEvent) context.Context
	OnPassEnd         func(ctx context.Context, e PassEvent)
}

var _ Observer = ObserverFuncs{}

// BlobStart implements Observer.
func (o ObserverFuncs) BlobStart(ctx context.Context, e BlobStartEvent) context.Context {
	return observe.CallStart(o.OnBlobStart, ctx, e)
}

// BlobEnd implements Observer.
func (o ObserverFuncs) BlobEnd(ctx context.Context, e BlobEvent) {
	observe.Call(o.OnBlobEnd, ctx, e)
}

// Retried implements Observer.
func (o ObserverFuncs) Retried(ctx context.Context, e RetryEvent) {
	observe.Call(o.OnRetried, ctx, e)
}

// RepositoryStart implements Observer.
func (o ObserverFuncs) RepositoryStart(ctx context.Context, e RepositoryStartEvent) context.Context {
	return observe.CallStart(o.OnRepositoryStart, ctx, e)
}

// RepositoryEnd implements Observer.
func (o ObserverFuncs) RepositoryEnd(ctx context.Context, e RepositoryEvent) {
	observe.Call(o.OnRepositoryEnd, ctx, e)
}

// PassStart implements Observer.
func (o ObserverFuncs) PassStart(ctx context.Context, e PassStartEvent) context.Context {
	return observe.CallStart(o.OnPassStart, ctx, e)
}

// PassEnd implements Observer.
func (o ObserverFuncs) PassEnd(ctx context.Context, e PassEvent) {
	observe.Call(o.OnPassEnd, ctx, e)
}

// MultiObserver returns an Observer that tells each of obs in turn; nil
// ones are dropped. Start hooks run in order, each under the context the
// previous one returned; End hooks run in reverse order, each with the
// context its own Start returned.
func MultiObserver(obs ...Observer) Observer {
	return observe.Join(obs, func(list []Observer) Observer { return multiObserver(list) })
}

type multiObserver []Observer

func (m multiObserver) BlobStart(ctx context.Context, e BlobStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.BlobStart(ctx, e) })
}

func (m multiObserver) BlobEnd(ctx context.Context, e BlobEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.BlobEnd(ctx, e) })
}

func (m multiObserver) Retried(ctx context.Context, e RetryEvent) {
	for _, o := range m {
		o.Retried(ctx, e)
	}
}

func (m multiObserver) RepositoryStart(ctx context.Context, e RepositoryStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.RepositoryStart(ctx, e) })
}

func (m multiObserver) RepositoryEnd(ctx context.Context, e RepositoryEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.RepositoryEnd(ctx, e) })
}

func (m multiObserver) PassStart(ctx context.Context, e PassStartEvent) context.Context {
	return observe.Start(ctx, m, func(o Observer, ctx context.Context) context.Context { return o.PassStart(ctx, e) })
}

func (m multiObserver) PassEnd(ctx context.Context, e PassEvent) {
	observe.End(ctx, m, func(o Observer, ctx context.Context) { o.PassEnd(ctx, e) })
}
