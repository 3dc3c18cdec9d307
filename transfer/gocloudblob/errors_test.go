package gocloudblob

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"gocloud.dev/blob/memblob"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferryhq/ferry/transfer"
)

// Errors from gocloud drivers, the Google API client and gRPC reach
// transfer's retry policy with an HTTP status it understands; the
// original stays in the chain.
func TestErrorsAreClassified(t *testing.T) {
	gcsErr := func(code int) error { return fmt.Errorf("gcs: %w", &googleapi.Error{Code: code}) }
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
		cause     transfer.RetryCause
	}{
		{"gcs 503", gcsErr(http.StatusServiceUnavailable), true, transfer.RetryServerError},
		{"gcs 500", gcsErr(http.StatusInternalServerError), true, transfer.RetryServerError},
		{"gcs 429", gcsErr(http.StatusTooManyRequests), true, transfer.RetryThrottled},
		{"gcs 408", gcsErr(http.StatusRequestTimeout), true, transfer.RetryTimeout},
		{"gcs 404", gcsErr(http.StatusNotFound), false, transfer.RetryOther},
		{"gcs 403", gcsErr(http.StatusForbidden), false, transfer.RetryOther},
		{"grpc unavailable", status.Error(codes.Unavailable, "down"), true, transfer.RetryServerError},
		{"grpc aborted", status.Error(codes.Aborted, "again"), true, transfer.RetryServerError},
		{"grpc exhausted", status.Error(codes.ResourceExhausted, "slow down"), true, transfer.RetryThrottled},
		{"grpc deadline", status.Error(codes.DeadlineExceeded, "late"), true, transfer.RetryTimeout},
		{"grpc not found", status.Error(codes.NotFound, "gone"), false, transfer.RetryOther},
		{"plain", errors.New("boom"), false, transfer.RetryOther},
	} {
		err := wrapErr(tc.err)
		if got := transfer.IsRetryable(err); got != tc.retryable {
			t.Errorf("IsRetryable(%s: %v) = %v, want %v", tc.name, err, got, tc.retryable)
		}
		if got := transfer.ClassifyRetry(err); tc.retryable && got != tc.cause {
			t.Errorf("ClassifyRetry(%s) = %s, want %s", tc.name, got, tc.cause)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: the original error is not in the chain of %v", tc.name, err)
		}
	}
	if err := wrapErr(nil); err != nil {
		t.Fatalf("wrapErr(nil) = %v", err)
	}
}

// A gocloud NotFound wraps transfer.ErrNotExist, and a missing key in a
// real bucket is one.
func TestNotFoundIsErrNotExist(t *testing.T) {
	b := New(memblob.OpenBucket(nil))
	defer b.Blob().Close()
	_, err := b.Attributes(context.Background(), "nope")
	if !errors.Is(err, transfer.ErrNotExist) || transfer.IsRetryable(err) {
		t.Fatalf("Attributes of a missing key: %v, want ErrNotExist, not retryable", err)
	}
}
