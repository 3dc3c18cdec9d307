package importserver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

// The whole protocol over HTTP, with every answer the API gives.
func TestAPILifecycleAndStatusCodes(t *testing.T) {
	f := newFixture(t, nil)
	f.im.Hold("group/image")

	code, st, _ := f.call(t, http.MethodPut, "group/image", "import_type=final")
	require.Equal(t, http.StatusFailedDependency, code, "final import without a pre-import")
	require.Equal(t, "PRE_IMPORT_FAILED", errorCode(st))

	code, st, _ = f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, importserver.StatusPreImportInProgress, st.Status)
	require.Equal(t, "image", st.Name)
	require.Equal(t, "group/image", st.Path)
	require.Equal(t, importserver.PreImport, st.Type)
	require.Equal(t, int64(1), st.Run)
	require.NotNil(t, st.StartedAt)
	require.Eventually(t, func() bool { return f.im.Running("group/image") == 1 }, 5*time.Second, time.Millisecond)

	code, st, _ = f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "IMPORT_IN_PROGRESS", errorCode(st))
	require.Equal(t, importserver.StatusPreImportInProgress, st.Status, "a refusal shows the current status")
	code, st, _ = f.call(t, http.MethodPut, "group/image", "import_type=final")
	require.Equal(t, http.StatusTooEarly, code)
	require.Equal(t, "PRE_IMPORT_IN_PROGRESS", errorCode(st))

	code, st, _ = f.call(t, http.MethodGet, "group/image", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, importserver.StatusPreImportInProgress, st.Status)
	require.Equal(t, "pre-import in progress", st.Detail)
	require.Equal(t, "registry-0", st.Owner)
	require.Nil(t, st.FinishedAt)

	// The limit (3) counts every running import.
	f.im.Hold("a")
	f.im.Hold("b")
	for _, p := range []string{"a", "b"} {
		code, _, _ = f.call(t, http.MethodPut, p, "import_type=pre")
		require.Equal(t, http.StatusAccepted, code)
	}
	code, st, _ = f.call(t, http.MethodPut, "c", "import_type=pre")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "IMPORT_RATE_LIMIT", errorCode(st))
	_, err := f.store.Get(context.Background(), "c")
	require.ErrorIs(t, err, importserver.ErrNotFound, "a refused start records nothing")
	f.im.Release("a")
	f.im.Release("b")
	f.coord.waitFor(t, "a", importserver.StatusPreImportComplete)
	f.coord.waitFor(t, "b", importserver.StatusPreImportComplete)
	code, _, _ = f.call(t, http.MethodPut, "c", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code, "room again")

	f.im.Release("group/image")
	n := f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
	require.Equal(t, "image", n.Name)
	require.Equal(t, "Bearer notify-secret", n.Auth)
	require.Contains(t, n.Detail, "pre-import completed successfully")
	code, st, _ = f.call(t, http.MethodGet, "group/image", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, importserver.StatusPreImportComplete, st.Status)
	require.NotNil(t, st.FinishedAt)

	code, st, _ = f.call(t, http.MethodPut, "group/image", "import_type=final")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, importserver.StatusImportInProgress, st.Status)
	require.Equal(t, int64(2), st.Run)
	f.coord.waitFor(t, "group/image", importserver.StatusImportComplete)
	for _, typ := range []string{"pre", "final"} {
		code, st, _ = f.call(t, http.MethodPut, "group/image", "import_type="+typ)
		require.Equal(t, http.StatusOK, code, "nothing to do once imported")
		require.Equal(t, importserver.StatusImportComplete, st.Status)
		require.Empty(t, st.Errors)
	}
	require.Equal(t, 1, f.im.Calls(transfer.FinalImport, "group/image"))

	// Native repositories: nothing to import.
	code, st, _ = f.call(t, http.MethodPut, "native/one", "import_type=pre")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, importserver.StatusNative, st.Status)
	code, st, _ = f.call(t, http.MethodGet, "native/one", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, importserver.StatusNative, st.Status)

	// Unknown repositories.
	for _, m := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
		code, st, _ = f.call(t, m, "no/such/repo", "import_type=pre")
		require.Equal(t, http.StatusNotFound, code, m)
		require.Equal(t, "NAME_UNKNOWN", errorCode(st), m)
	}
	code, st, _ = f.call(t, http.MethodGet, "group/other", "")
	require.Equal(t, http.StatusOK, code, "known but never imported: no status yet, not missing")
	require.Empty(t, st.Status)
	require.Equal(t, "no import recorded", st.Detail)
}

func TestCancel(t *testing.T) {
	f := newFixture(t, nil)
	code, st, _ := f.call(t, http.MethodDelete, "group/image", "")
	require.Equal(t, http.StatusBadRequest, code, "nothing recorded")
	require.Equal(t, "IMPORT_NOT_IN_PROGRESS", errorCode(st))

	f.im.Hold("group/image")
	code, _, _ = f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return f.im.Running("group/image") == 1 }, 5*time.Second, time.Millisecond)
	code, st, _ = f.call(t, http.MethodDelete, "group/image", "")
	require.Equal(t, http.StatusAccepted, code)
	require.True(t, st.CancelRequested)
	n := f.coord.waitFor(t, "group/image", importserver.StatusPreImportCanceled)
	require.Equal(t, "canceled by request", n.Detail)
	require.Zero(t, f.im.Running("group/image"), "the import stopped before its cancellation was notified")

	code, st, _ = f.call(t, http.MethodDelete, "group/image", "")
	require.Equal(t, http.StatusBadRequest, code, "nothing runs any more")
	require.Equal(t, importserver.StatusPreImportCanceled, st.Status, "the body says where the import is")
	code, _, _ = f.call(t, http.MethodDelete, "group/image", "force=true")
	require.Equal(t, http.StatusBadRequest, code)
}

// A forced cancellation clears an import whose owner is gone: nobody would
// ever record its end otherwise (before StaleAfter).
func TestForceCancelClearsStuckImport(t *testing.T) {
	f := newFixture(t, func(c *importserver.Config) { c.StaleAfter = time.Hour })
	// Recorded by an instance that died at once.
	_, err := f.store.Begin(context.Background(), importserver.BeginRequest{Path: "group/image", Type: importserver.PreImport, Owner: "registry-9"})
	require.NoError(t, err)
	code, st, _ := f.call(t, http.MethodDelete, "group/image", "")
	require.Equal(t, http.StatusAccepted, code)
	require.True(t, st.CancelRequested)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, importserver.StatusPreImportInProgress, f.get(t, "group/image").Status, "nobody runs it to stop it")

	code, st, _ = f.call(t, http.MethodDelete, "group/image", "force=true")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, importserver.StatusPreImportCanceled, st.Status)
	n := f.coord.waitFor(t, "group/image", importserver.StatusPreImportCanceled)
	require.Equal(t, "canceled by request (forced)", n.Detail)
	code, _, _ = f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code, "it may start again")
}

// Bad input gets a clear 4xx, and nothing changes.
func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t, nil)
	base := f.http.URL
	auth := "Bearer " + secret
	for _, c := range []struct {
		name, method, rawURL, auth string
		body                       string
		code                       int
		errCode                    string
	}{
		{"no credentials, bad path", http.MethodPut, "/gitlab/v1/import/BAD/?import_type=pre", "", "", 401, "UNAUTHORIZED"},
		{"basic auth", http.MethodPut, "/gitlab/v1/import/a/?import_type=pre", "Basic Zm9vOmJhcg==", "", 401, "UNAUTHORIZED"},
		{"wrong secret", http.MethodPut, "/gitlab/v1/import/a/?import_type=pre", "Bearer nope", "", 403, "DENIED"},
		{"wrong secret, huge body", http.MethodPut, "/gitlab/v1/import/a/?import_type=pre", "Bearer nope", strings.Repeat("x", 1<<20), 403, "DENIED"},
		{"method", http.MethodPost, "/gitlab/v1/import/a/?import_type=pre", auth, "", 405, "UNSUPPORTED"},
		{"upper case", http.MethodPut, "/gitlab/v1/import/Group/Image/?import_type=pre", auth, "", 400, "NAME_INVALID"},
		{"empty path", http.MethodPut, "/gitlab/v1/import//?import_type=pre", auth, "", 400, "NAME_INVALID"},
		{"double slash", http.MethodPut, "/gitlab/v1/import/a//b/?import_type=pre", auth, "", 400, "NAME_INVALID"},
		{"escaped slash", http.MethodPut, "/gitlab/v1/import/group%2Fimage/?import_type=pre", auth, "", 400, "NAME_INVALID"},
		{"too long", http.MethodPut, "/gitlab/v1/import/" + strings.Repeat("a", 300) + "/?import_type=pre", auth, "", 400, "NAME_INVALID"},
		{"no type", http.MethodPut, "/gitlab/v1/import/a/", auth, "", 400, "INVALID_QUERY_PARAMETER_VALUE"},
		{"unknown type", http.MethodPut, "/gitlab/v1/import/a/?import_type=both", auth, "", 400, "INVALID_QUERY_PARAMETER_VALUE"},
		{"two types", http.MethodPut, "/gitlab/v1/import/a/?import_type=pre&import_type=final", auth, "", 400, "INVALID_QUERY_PARAMETER_VALUE"},
		{"bad query", http.MethodPut, "/gitlab/v1/import/a/?import_type=%zz", auth, "", 400, "INVALID_QUERY_PARAMETER_VALUE"},
		{"bad force", http.MethodDelete, "/gitlab/v1/import/a/?force=yes", auth, "", 400, "INVALID_QUERY_PARAMETER_VALUE"},
		{"huge body", http.MethodPut, "/gitlab/v1/import/a/?import_type=pre", auth, strings.Repeat("x", 1<<20), 413, "SIZE_INVALID"},
		{"other endpoint", http.MethodGet, "/gitlab/v1/other/a/", auth, "", 404, "NOT_FOUND"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, base+c.rawURL, strings.NewReader(c.body))
			require.NoError(t, err)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, c.code, resp.StatusCode)
			var st importserver.StatusResponse
			require.NoError(t, jsonDecode(resp, &st))
			require.Equal(t, c.errCode, errorCode(st))
			require.NotEmpty(t, st.Errors[0].Message)
			if c.code == 401 {
				require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			}
			if c.code == 405 {
				require.Equal(t, "GET, PUT, DELETE", resp.Header.Get("Allow"))
			}
		})
	}
	for _, p := range []string{"a", "group/image"} {
		_, err := f.store.Get(context.Background(), p)
		require.ErrorIs(t, err, importserver.ErrNotFound, "nothing was recorded for %s", p)
	}
	require.Zero(t, f.im.Calls(transfer.PreImport, "a"))
	require.Empty(t, f.coord.notifications())
}

func TestNotRunning(t *testing.T) {
	coord := newCoordinator(t)
	im := newFixtureImporter()
	srv, err := importserver.New(baseConfig(t, newMemStore(), im, coord.url()))
	require.NoError(t, err)
	h := http.NewServeMux()
	h.Handle("/", srv.Handler())
	ts := newServer(t, h)
	code, st, hdr := callAPI(t, ts.URL, http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusServiceUnavailable, code, "before Start")
	require.Equal(t, "UNAVAILABLE", errorCode(st))
	require.NotEmpty(t, hdr.Get("Retry-After"))
	require.NoError(t, srv.Start(context.Background()))
	require.ErrorIs(t, srv.Start(context.Background()), importserver.ErrNotRunning, "Start twice")
	code, _, _ = callAPI(t, ts.URL, http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	require.NoError(t, srv.Shutdown(context.Background()))
	code, _, _ = callAPI(t, ts.URL, http.MethodPut, "b", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusServiceUnavailable, code, "after Shutdown")
	code, _, _ = callAPI(t, ts.URL, http.MethodGet, "a", "", "Bearer "+secret, nil)
	require.Equal(t, http.StatusOK, code, "status is still served")
}

func TestConfigErrors(t *testing.T) {
	good := baseConfig(t, newMemStore(), newFixtureImporter(), "http://127.0.0.1:1/internal")
	for name, mod := range map[string]func(*importserver.Config){
		"no importer":      func(c *importserver.Config) { c.Importer = nil },
		"no repositories":  func(c *importserver.Config) { c.Repositories = nil },
		"no store":         func(c *importserver.Config) { c.Store = nil },
		"no authorizer":    func(c *importserver.Config) { c.Authorize = nil },
		"no url":           func(c *importserver.Config) { c.Notify.URL = "" },
		"bad url":          func(c *importserver.Config) { c.Notify.URL = "ftp://x" },
		"url with query":   func(c *importserver.Config) { c.Notify.URL = "http://x/?a=b" },
		"negative max":     func(c *importserver.Config) { c.MaxConcurrentImports = -1 },
		"stale too short":  func(c *importserver.Config) { c.StaleAfter = c.HeartbeatInterval },
		"lease too short":  func(c *importserver.Config) { c.Notify.LeaseFor = time.Second; c.Notify.Timeout = time.Second },
		"negative backoff": func(c *importserver.Config) { c.Notify.Backoff = -1 },
		"negative guard":   func(c *importserver.Config) { c.Guard.RetryAfter = -1 },
	} {
		c := good
		mod(&c)
		_, err := importserver.New(c)
		require.ErrorIs(t, err, importserver.ErrConfig, name)
	}
	_, err := importserver.New(good)
	require.NoError(t, err)
}

// roundTripperFunc stands for a host's replacement of http.DefaultTransport
// (otelhttp wraps it in a type of its own).
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Not parallel: it replaces http.DefaultTransport.
func TestNewWithReplacedDefaultTransport(t *testing.T) {
	orig := http.DefaultTransport
	t.Cleanup(func() { http.DefaultTransport = orig })
	http.DefaultTransport = roundTripperFunc(orig.RoundTrip)

	f := newFixture(t, nil) // Notify.Client nil: New builds its own transport
	code, _, _ := f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
}

func TestParseTypeAndPaths(t *testing.T) {
	for _, s := range []string{"pre", "final"} {
		typ, err := importserver.ParseType(s)
		require.NoError(t, err)
		require.Equal(t, s, typ.String())
	}
	for _, s := range []string{"", "Pre", "true", strings.Repeat("x", 1000)} {
		_, err := importserver.ParseType(s)
		require.ErrorIs(t, err, importserver.ErrInvalidType)
		require.Less(t, len(err.Error()), 200)
	}
	require.NoError(t, importserver.ValidatePath("gitlab-org/build/cng/gitlab-container-registry"))
	err := importserver.ValidatePath("a/../b")
	require.ErrorIs(t, err, importserver.ErrInvalidPath)
	require.True(t, errors.Is(err, importserver.ErrInvalidPath))
}
