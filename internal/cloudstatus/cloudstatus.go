package cloudstatus

import (
	"errors"
	"net/http"

	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code returns the HTTP status err carries or stands for: a
// *googleapi.Error's code, an HTTPStatusCode() method's, a gRPC status
// (Unavailable and Aborted 503, ResourceExhausted 429, DeadlineExceeded
// 408, Internal 500) or a gocloud error code (ResourceExhausted 429,
// DeadlineExceeded 408, Internal 500). ok is false when it carries none of
// them.
func Code(err error) (code int, ok bool) {
	if err == nil {
		return 0, false
	}
	if gerr, isG := errors.AsType[*googleapi.Error](err); isG {
		return gerr.Code, true
	}
	if ws, has := withStatus(err); has {
		return ws.HTTPStatusCode(), true
	}
	if s, isStatus := status.FromError(err); isStatus && s.Code() != codes.OK && s.Code() != codes.Unknown {
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

// Wrap returns err with an HTTPStatusCode() method when Code finds a
// status, and err itself otherwise (nil for nil). The result unwraps to err.
func Wrap(err error) error {
	if _, has := withStatus(err); has {
		return err
	}
	code, ok := Code(err)
	if !ok {
		return err
	}
	return &Error{Status: code, Err: err}
}

// Error is an error with the HTTP status Code found for it.
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
