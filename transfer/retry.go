package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"
)

// RetryPolicy bounds how failed storage operations are retried. Waits grow
// exponentially from InitialBackoff by Multiplier up to MaxBackoff, and each
// wait is drawn uniformly from its upper half ("equal jitter") so that many
// workers hitting the same outage do not retry in lockstep.
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts, including the first.
	// Default 5. Set 1 to disable retries.
	MaxAttempts int
	// InitialBackoff is the wait before the second attempt. Default 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps a single wait. Default 10s.
	MaxBackoff time.Duration
	// Multiplier grows the wait after each attempt. Default 2.
	Multiplier float64
	// Retryable decides whether an error is worth another attempt.
	// Default IsRetryable.
	Retryable func(error) bool
	// Observer is told about each retry (Observer.Retried), for metrics.
	// Default: the Observer of the Options or ImportOptions the policy is
	// part of; none for NewLayoutReader and NewLayoutSink.
	Observer Observer
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Multiplier < 1 {
		p.Multiplier = 2
	}
	if p.Retryable == nil {
		p.Retryable = IsRetryable
	}
	return p
}

// backoff returns the wait before attempt n+1, after n failed attempts.
func (p RetryPolicy) backoff(n int) time.Duration {
	return backoff.Equal(backoff.Policy{Base: p.InitialBackoff, Max: p.MaxBackoff, Factor: p.Multiplier}.Delay(n - 1))
}

// do runs fn until it succeeds, fails with an error the policy does not
// retry, runs out of attempts, or ctx is done. It returns the number of
// attempts made and the last error. op names the operation for the
// Observer.
func (p RetryPolicy) do(ctx context.Context, op string, fn func(ctx context.Context) error) (int, error) {
	return p.doWith(ctx, op, p.Retryable, fn)
}

// doWith is do with another rule for what is retried.
func (p RetryPolicy) doWith(ctx context.Context, op string, retryable func(error) bool, fn func(ctx context.Context) error) (int, error) {
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return attempt, nil
		}
		if ctx.Err() != nil {
			return attempt, withCause(ctx, err)
		}
		if attempt >= p.MaxAttempts || !retryable(err) {
			return attempt, err
		}
		pause := p.backoff(attempt)
		if p.Observer != nil {
			p.Observer.Retried(ctx, RetryEvent{Op: op, Cause: ClassifyRetry(err), Attempt: attempt, Wait: pause, Err: err})
		}
		if wait.Sleep(ctx, pause) != nil {
			return attempt, withCause(ctx, err)
		}
	}
}

// withCause makes sure an error returned because ctx ended says so.
func withCause(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("%w (after: %w)", cause, err)
}

// errTruncated marks a read that ended before the object's size; it is
// usually a dropped connection and worth retrying.
var errTruncated = errors.New("transfer: read ended early")

// IsRetryable reports whether err looks transient: HTTP 408, 429 and 5xx
// (any error with an HTTPStatusCode() int method; package
// transfer/gocloudblob gives gocloud, Google API and gRPC errors one);
// truncated reads, bare EOFs, connection resets,
// network timeouts, a storage client's failed checksum on a read ("bad
// CRC") and ErrSourceChanged. Context cancellation, ErrCorrupt (which a
// Transferer retries under its own CorruptRetries budget), ErrMissingBlob,
// ErrBucketNotFound and validation errors are never retried.
func IsRetryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, context.Canceled),
		errors.Is(err, ErrBucketNotFound),
		errors.Is(err, ErrEmptySource),
		errors.Is(err, ErrCorrupt),
		errors.Is(err, ErrMissingBlob),
		errors.Is(err, ErrInvalidDigest),
		errors.Is(err, ErrInvalidName),
		errors.Is(err, ErrInvalidPath),
		errors.Is(err, ErrBadLink),
		errors.Is(err, ErrBadManifest):
		return false
	case errors.Is(err, errTruncated),
		errors.Is(err, ErrSourceChanged),
		isClientChecksumError(err),
		isGarbledResponse(err),
		errors.Is(err, io.ErrUnexpectedEOF),
		// An operation that fails with a bare EOF read something that was
		// cut short, such as fileblob's metadata file being rewritten by a
		// concurrent writer.
		errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	if status, ok := httpStatus(err); ok {
		return status == http.StatusRequestTimeout ||
			status == http.StatusTooManyRequests ||
			status >= 500
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func httpStatus(err error) (int, bool) {
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		return withStatus.HTTPStatusCode(), true
	}
	return 0, false
}

// isGarbledResponse reports a storage API answer that could not be decoded
// (a JSON syntax or type error from the client): the bytes were damaged on
// the way, and asking again is the cure. Manifests are parsed elsewhere and
// fail with ErrBadManifest, which is never retried.
func isGarbledResponse(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te)
}

// isClientChecksumError reports a storage client's own checksum failure on
// a read, such as cloud.google.com/go/storage's "bad CRC on read": the
// bytes were damaged on the way, not at rest. The client exports no type
// for it, so its message is matched.
func isClientChecksumError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "bad CRC")
}
