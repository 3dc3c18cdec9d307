package enqueuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"

	"github.com/ferryhq/ferry/internal/clip"
)

// HTTPRegistryOptions configures NewHTTPRegistry.
type HTTPRegistryOptions struct {
	// BaseURL is the registry's root, e.g. "https://registry.example.com".
	// Required.
	BaseURL string
	// Client sends the requests. Default: a new http.Client without an
	// overall timeout (Timeout bounds each attempt instead).
	Client *http.Client
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Timeout bounds each attempt, from sending the request to reading the
	// response body. Default 10s.
	Timeout time.Duration
	// MaxAttempts is the number of attempts per call, the first included,
	// for network errors, attempt timeouts and 5xx answers. Default 3;
	// 1 disables retries. 4xx answers, 429 included, are never retried.
	MaxAttempts int
	// Backoff is the wait before the second attempt; it doubles after each
	// attempt, with jitter, up to MaxBackoff. Default 100ms.
	Backoff time.Duration
	// MaxBackoff caps one wait. Default 2s.
	MaxBackoff time.Duration
	// Logger receives one line per retried attempt. Default: slog.Default().
	Logger *slog.Logger
}

// HTTPRegistry is a RegistryClient for a registry's import API:
//
//	PUT    /gitlab/v1/import/<path>/?import_type=pre|final   start
//	GET    /gitlab/v1/import/<path>/                         status
//	DELETE /gitlab/v1/import/<path>/                         cancel
//
// Answers map to errors as follows: 202 (and 201, 204) is success; 200 to
// a start means the repository is already native (ErrNative); 404
// ErrRegistryNotFound; 409 ErrImportInProgress; 425 ErrTooEarly; 424
// ErrPreImportFailed; 429 ErrTooManyImports; 401, 403, 5xx, network
// errors and timeouts ErrRegistryUnavailable (the last three after the
// retries). Every error is a *RegistryError.
//
// A start whose attempt timed out or lost its connection may have reached
// the registry; when a retry of it is then answered 409 (already in
// progress), the start is taken as accepted.
type HTTPRegistry struct {
	base   *url.URL
	opts   HTTPRegistryOptions
	client *http.Client
}

var _ RegistryClient = (*HTTPRegistry)(nil)

// maxErrorBody is how much of an error response is kept for the log.
const maxErrorBody = 512

// maxStatusBody bounds a status answer.
const maxStatusBody = 64 << 10

// NewHTTPRegistry returns an HTTPRegistry.
func NewHTTPRegistry(opts HTTPRegistryOptions) (*HTTPRegistry, error) {
	if opts.BaseURL == "" {
		return nil, fmt.Errorf("%w: HTTPRegistryOptions.BaseURL is empty", ErrConfig)
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: HTTPRegistryOptions.BaseURL %q must be an http(s) URL with a host", ErrConfig, opts.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%w: HTTPRegistryOptions.BaseURL %q must not have a query or fragment", ErrConfig, opts.BaseURL)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Second
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.Backoff)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{}
	}
	return &HTTPRegistry{base: base, opts: opts, client: client}, nil
}

// StartPreImport implements RegistryClient.
func (c *HTTPRegistry) StartPreImport(ctx context.Context, path string) error {
	return c.start(ctx, "pre-import", path, "pre")
}

// StartImport implements RegistryClient.
func (c *HTTPRegistry) StartImport(ctx context.Context, path string) error {
	return c.start(ctx, "import", path, "final")
}

func (c *HTTPRegistry) start(ctx context.Context, op, path, importType string) error {
	resp, err := c.do(ctx, op, http.MethodPut, path, url.Values{"import_type": {importType}}, 0)
	if err != nil {
		var re *RegistryError
		if errors.As(err, &re) && re.StatusCode == http.StatusConflict && resp.uncertain {
			// An earlier attempt may have started it: the 409 is our own.
			return nil
		}
		return err
	}
	if resp.status == http.StatusOK {
		return &RegistryError{Op: op, Path: path, StatusCode: resp.status, Err: ErrNative}
	}
	return nil
}

// ImportStatus implements RegistryClient.
func (c *HTTPRegistry) ImportStatus(ctx context.Context, path string) (ImportStatus, error) {
	resp, err := c.do(ctx, "status", http.MethodGet, path, nil, maxStatusBody)
	if err != nil {
		return ImportStatus{}, err
	}
	var st ImportStatus
	if err := json.Unmarshal(resp.body, &st); err != nil {
		return ImportStatus{}, &RegistryError{Op: "status", Path: path, StatusCode: resp.status,
			Body: clip.Marked(string(resp.body), maxErrorBody), Err: fmt.Errorf("malformed status answer: %w", err)}
	}
	return st, nil
}

// CancelImport implements RegistryClient. A 400 (nothing in progress to
// cancel) is ErrImportNotInProgress.
func (c *HTTPRegistry) CancelImport(ctx context.Context, path string) error {
	_, err := c.do(ctx, "cancel", http.MethodDelete, path, nil, 0)
	var re *RegistryError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		re.Err = ErrImportNotInProgress
	}
	return err
}

// answer is a successful response, and whether an earlier attempt of the
// same call had an unknown outcome.
type answer struct {
	status    int
	body      []byte
	uncertain bool
}

// do sends one call with retries. On error it still returns whether an
// earlier attempt's outcome was unknown.
func (c *HTTPRegistry) do(ctx context.Context, op, method, path string, query url.Values, bodyLimit int64) (answer, error) {
	if err := ValidatePath(path); err != nil {
		return answer{}, &RegistryError{Op: op, Path: path, Err: err}
	}
	u := *c.base
	u.Path = c.base.Path + "/gitlab/v1/import/" + path + "/"
	u.RawQuery = query.Encode()
	var out answer
	for attempt := 1; ; attempt++ {
		status, body, err := c.attempt(ctx, method, u.String(), bodyLimit)
		if err == nil && status < 300 {
			out.status, out.body = status, body
			return out, nil
		}
		re := &RegistryError{Op: op, Path: path, StatusCode: status, Err: err}
		retry := false
		switch {
		case err != nil && ctx.Err() != nil:
			re.Err = ctx.Err()
			return out, re
		case err != nil:
			// No answer: the request may or may not have been acted on.
			re.Err = fmt.Errorf("%w: %w", ErrRegistryUnavailable, err)
			out.uncertain = true
			retry = true
		default:
			re.Body = clip.Marked(strings.TrimSpace(string(body)), maxErrorBody)
			re.Err, retry = classify(status)
		}
		if !retry || attempt >= c.opts.MaxAttempts {
			return out, re
		}
		pause := c.backoff(attempt)
		c.opts.Logger.WarnContext(ctx, "enqueuer: registry call failed; retrying",
			"op", op, "container_repository_path", path, "attempt", attempt, "retry_in", pause, "error", re)
		if err := wait.Sleep(ctx, pause); err != nil {
			re.Err = fmt.Errorf("%w (after %w)", err, re.Err)
			return out, re
		}
	}
}

// classify maps an HTTP status of a failed call to its sentinel and says
// whether another attempt may help.
func classify(status int) (error, bool) {
	switch {
	case status == http.StatusTooManyRequests:
		return ErrTooManyImports, false
	case status == http.StatusNotFound:
		return ErrRegistryNotFound, false
	case status == http.StatusConflict:
		return ErrImportInProgress, false
	case status == http.StatusTooEarly:
		return ErrTooEarly, false
	case status == http.StatusFailedDependency:
		return ErrPreImportFailed, false
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: credentials refused", ErrRegistryUnavailable), false
	case status >= 500:
		return ErrRegistryUnavailable, true
	default:
		return fmt.Errorf("unexpected answer %d %s", status, http.StatusText(status)), false
	}
}

// attempt sends one request under the attempt timeout and reads up to
// bodyLimit bytes of a success body (maxErrorBody of an error body).
func (c *HTTPRegistry) attempt(ctx context.Context, method, u string, bodyLimit int64) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	limit := bodyLimit
	if resp.StatusCode >= 300 || limit <= 0 {
		limit = maxErrorBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(body)) > limit {
		// Cut: an oversized status answer then fails to parse.
		body = body[:limit]
	}
	// Drain a little more so the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	return resp.StatusCode, body, nil
}

// backoff is the wait after attempt n: exponential with equal jitter.
func (c *HTTPRegistry) backoff(n int) time.Duration {
	return backoff.Equal(backoff.Policy{Base: c.opts.Backoff, Max: c.opts.MaxBackoff}.Delay(n - 1))
}
