package enqueuer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
)

func newHTTPRegistry(t *testing.T, h http.Handler, opts enqueuer.HTTPRegistryOptions) *enqueuer.HTTPRegistry {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL + opts.BaseURL // a path prefix may be given
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	opts.Logger = quiet
	c, err := enqueuer.NewHTTPRegistry(opts)
	require.NoError(t, err)
	return c
}

func TestHTTPRegistryAgainstFake(t *testing.T) {
	ctx := context.Background()
	fake := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{})
	c := newHTTPRegistry(t, enqueuertest.RegistryHandler(fake), enqueuer.HTTPRegistryOptions{})
	const p = "group/project/image"

	require.NoError(t, c.StartPreImport(ctx, p))
	st, err := c.ImportStatus(ctx, p)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusPreImportInProgress, st.Status)
	require.True(t, st.InProgress())
	require.ErrorIs(t, c.StartPreImport(ctx, p), enqueuer.ErrImportInProgress)
	require.ErrorIs(t, c.StartImport(ctx, p), enqueuer.ErrTooEarly, "425 while the pre-import runs")
	fake.Complete(p)
	require.NoError(t, c.StartImport(ctx, p))
	require.NoError(t, c.CancelImport(ctx, p))
	st, err = c.ImportStatus(ctx, p)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusImportCanceled, st.Status)

	require.ErrorIs(t, c.CancelImport(ctx, p), enqueuer.ErrImportNotInProgress, "400: nothing in progress")
	require.ErrorIs(t, c.CancelImport(ctx, "group/unknown"), enqueuer.ErrRegistryNotFound)
	require.ErrorIs(t, c.StartImport(ctx, "group/fresh"), enqueuer.ErrPreImportFailed, "424 without a pre-import")
	fake.SetStatus("group/native", enqueuer.StatusNative)
	require.ErrorIs(t, c.StartPreImport(ctx, "group/native"), enqueuer.ErrNative)
	require.Equal(t, 2, fake.Calls(enqueuertest.OpPreImport, p))
}

func TestHTTPRegistryRequestShape(t *testing.T) {
	ctx := context.Background()
	type seen struct{ method, path, query, auth string }
	var mu sync.Mutex
	var got []seen
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")})
		mu.Unlock()
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"status":"import_complete","detail":"done","extra":1}`))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	c := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{BaseURL: "/registry/", Token: "s3cret"})
	require.NoError(t, c.StartPreImport(ctx, "gitlab-org/gitlab-test/test_image_1"))
	require.NoError(t, c.StartImport(ctx, "a/b"))
	st, err := c.ImportStatus(ctx, "a/b")
	require.NoError(t, err)
	require.Equal(t, enqueuer.ImportStatus{Status: enqueuer.StatusImportComplete, Detail: "done"}, st)
	require.NoError(t, c.CancelImport(ctx, "a/b"))
	require.Equal(t, []seen{
		{"PUT", "/registry/gitlab/v1/import/gitlab-org/gitlab-test/test_image_1/", "import_type=pre", "Bearer s3cret"},
		{"PUT", "/registry/gitlab/v1/import/a/b/", "import_type=final", "Bearer s3cret"},
		{"GET", "/registry/gitlab/v1/import/a/b/", "", "Bearer s3cret"},
		{"DELETE", "/registry/gitlab/v1/import/a/b/", "", "Bearer s3cret"},
	}, got)
}

// statusSequence answers with the given codes in turn (the last one
// repeats) and counts requests.
func statusSequence(codes ...int) (http.Handler, *atomic.Int64) {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		code := codes[min(i, len(codes)-1)]
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"message":"` + http.StatusText(code) + `"}`))
	}), &n
}

func TestHTTPRegistryErrorMapping(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		code     int
		want     error
		requests int64
	}{
		{http.StatusTooManyRequests, enqueuer.ErrTooManyImports, 1},
		{http.StatusNotFound, enqueuer.ErrRegistryNotFound, 1},
		{http.StatusConflict, enqueuer.ErrImportInProgress, 1},
		{http.StatusTooEarly, enqueuer.ErrTooEarly, 1},
		{http.StatusFailedDependency, enqueuer.ErrPreImportFailed, 1},
		{http.StatusUnauthorized, enqueuer.ErrRegistryUnavailable, 1},
		{http.StatusForbidden, enqueuer.ErrRegistryUnavailable, 1},
		{http.StatusServiceUnavailable, enqueuer.ErrRegistryUnavailable, 3},
		{http.StatusInternalServerError, enqueuer.ErrRegistryUnavailable, 3},
		{http.StatusOK, enqueuer.ErrNative, 1},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			h, n := statusSequence(tc.code)
			c := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{})
			err := c.StartPreImport(ctx, "a/b")
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, tc.requests, n.Load(), "requests sent")
			var re *enqueuer.RegistryError
			require.True(t, errors.As(err, &re))
			require.Equal(t, tc.code, re.StatusCode)
			require.Equal(t, "a/b", re.Path)
		})
	}
	t.Run("unexpected 400", func(t *testing.T) {
		h, _ := statusSequence(http.StatusBadRequest)
		err := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{}).StartPreImport(ctx, "a/b")
		require.ErrorContains(t, err, "HTTP 400")
		require.ErrorContains(t, err, "Bad Request")
	})
}

func TestHTTPRegistryRetriesBoundedWithBackoff(t *testing.T) {
	ctx := context.Background()
	h, n := statusSequence(503, 502, 202)
	c := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{MaxAttempts: 3})
	require.NoError(t, c.StartPreImport(ctx, "a/b"))
	require.EqualValues(t, 3, n.Load())

	h, n = statusSequence(503)
	c = newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{MaxAttempts: 5})
	require.ErrorIs(t, c.StartPreImport(ctx, "a/b"), enqueuer.ErrRegistryUnavailable)
	require.EqualValues(t, 5, n.Load())

	h, n = statusSequence(503)
	c = newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{MaxAttempts: 1})
	require.ErrorIs(t, c.StartPreImport(ctx, "a/b"), enqueuer.ErrRegistryUnavailable)
	require.EqualValues(t, 1, n.Load())
}

// slowFirst hangs on the first request until the client gives up, then
// answers the others with code.
func slowFirst(code int) (http.Handler, *atomic.Int64) {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(code)
	}), &n
}

// The attempts' timeouts leave a loaded machine room: with 50 ms an answer
// that took longer would be a third attempt, and with 20 ms an attempt
// could end before its request reached the handler.
func TestHTTPRegistryAttemptTimeout(t *testing.T) {
	ctx := context.Background()
	h, n := slowFirst(http.StatusAccepted)
	c := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{Timeout: 500 * time.Millisecond})
	require.NoError(t, c.StartPreImport(ctx, "a/b"))
	require.EqualValues(t, 2, n.Load())

	// The timed-out attempt may have started the import: a 409 to the
	// retry is then our own start, not someone else's.
	h, n = slowFirst(http.StatusConflict)
	c = newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{Timeout: 500 * time.Millisecond})
	require.NoError(t, c.StartPreImport(ctx, "a/b"))
	require.EqualValues(t, 2, n.Load())

	// Without an uncertain attempt, 409 stays an error.
	h, _ = statusSequence(http.StatusConflict)
	c = newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{})
	require.ErrorIs(t, c.StartPreImport(ctx, "a/b"), enqueuer.ErrImportInProgress)

	// Every attempt timing out: unavailable, after MaxAttempts.
	var hung atomic.Int64
	c = newHTTPRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		<-r.Context().Done()
	}), enqueuer.HTTPRegistryOptions{Timeout: 300 * time.Millisecond, MaxAttempts: 2})
	err := c.StartPreImport(ctx, "a/b")
	require.ErrorIs(t, err, enqueuer.ErrRegistryUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.EqualValues(t, 2, hung.Load())
}

func TestHTTPRegistryCallerContextEndsRetries(t *testing.T) {
	h, n := statusSequence(503)
	c := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{Backoff: time.Hour, MaxAttempts: 10})
	// Long enough for the first attempt's answer on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := c.StartPreImport(ctx, "a/b")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, enqueuer.ErrRegistryUnavailable)
	require.EqualValues(t, 1, n.Load())
}

func TestHTTPRegistryBadInput(t *testing.T) {
	ctx := context.Background()
	h, n := statusSequence(202)
	c := newHTTPRegistry(t, h, enqueuer.HTTPRegistryOptions{})
	for _, p := range []string{"", "a/../b", "a//b", "../../admin", "a/b?x=1", "a/b#c"} {
		require.ErrorIs(t, c.StartPreImport(ctx, p), enqueuer.ErrInvalidPath, p)
		_, err := c.ImportStatus(ctx, p)
		require.ErrorIs(t, err, enqueuer.ErrInvalidPath, p)
	}
	require.Zero(t, n.Load(), "no request for an invalid path")

	for _, u := range []string{"", "registry.example.com", "ftp://x", "http://", "http://x/?q=1"} {
		_, err := enqueuer.NewHTTPRegistry(enqueuer.HTTPRegistryOptions{BaseURL: u})
		require.ErrorIs(t, err, enqueuer.ErrConfig, u)
	}

	// A malformed or huge status answer is an error, not a panic or a
	// huge allocation.
	c = newHTTPRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status": `))
	}), enqueuer.HTTPRegistryOptions{})
	_, err := c.ImportStatus(ctx, "a/b")
	require.ErrorContains(t, err, "malformed status answer")
	c = newHTTPRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"native","detail":"` + strings.Repeat("x", 1<<20) + `"}`))
	}), enqueuer.HTTPRegistryOptions{})
	_, err = c.ImportStatus(ctx, "a/b")
	require.ErrorContains(t, err, "malformed status answer")

	// Error bodies are cut for the log.
	c = newHTTPRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(strings.Repeat("y", 1<<20)))
	}), enqueuer.HTTPRegistryOptions{})
	err = c.StartPreImport(ctx, "a/b")
	require.Less(t, len(err.Error()), 1000)
}
