package cloudstatus

import (
	"errors"
	"net/http"

	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// code returns the HTTP status err stands for: a *googleapi.Error's code,
// a gRPC status code (Unavailable and Aborted 503, ResourceExhausted 429,
// DeadlineExceeded 408, Internal 500) or a gocloud error code
// (ResourceExhausted 429, DeadlineExceeded 408, Internal 500). ok is false
// when it carries none of them.
func code(err error) (status int, ok bool) {
	if err == nil {
		return 0, false
	}
	if gerr, isG := errors.AsType[*googleapi.Error](err); isG {
		return gerr.Code, true
	}
	if s, isStatus := grpcstatus.FromError(err); isStatus {
		switch s.Code() {
		case codes.Unavailable, codes.Aborted:
			return http.StatusServiceUnavailable, true
		case codes.ResourceExhausted:
			return http.StatusTooManyRequests, true
		case codes.DeadlineExceeded:
			return http.StatusRequestTimeout, true
		case codes.Internal:
			return http.StatusInternalServerError, true
		}
	}
	switch gcerrors.Code(err) {
	case gcerrors.ResourceExhausted:
		return http.StatusTooManyRequests, true
	case gcerrors.DeadlineExceeded:
		return http.StatusRequestTimeout, true
	case gcerrors.Internal:
		return http.StatusInternalServerError, true
	}
	return 0, false
}

// Wrap returns err with an HTTPStatusCode() method when it has none and
// code finds a status, and err itself otherwise (nil for nil). The result
// unwraps to err.
func Wrap(err error) error {
	if _, has := withStatus(err); has {
		return err
	}
	status, ok := code(err)
	if !ok {
		return err
	}
	return &Error{Status: status, Err: err}
}

// Error is an error with the HTTP status Wrap found for it.
type Error struct {
	Status int
	Err    error
}

// Error implements error.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the original error.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatusCode returns the status.
func (e *Error) HTTPStatusCode() int { return e.Status }

type statusCoder interface{ HTTPStatusCode() int }

func withStatus(err error) (statusCoder, bool) {
	var ws statusCoder
	ok := errors.As(err, &ws)
	return ws, ok
}
