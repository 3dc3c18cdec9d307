package importserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

const secret = "s3cret"

// received is one notification the coordinator got.
type received struct {
	Name, Path, Detail string
	Status             importserver.Status
	Auth               string
}

// coordinator is a notification endpoint that records what it gets and
// answers what answer says (200 by default).
type coordinator struct {
	srv *httptest.Server

	mu     sync.Mutex
	got    []received
	calls  int
	answer func(r received, call int) int
}

func newCoordinator(t *testing.T) *coordinator {
	c := &coordinator{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body received
		raw, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPut || json.Unmarshal(raw, &body) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body.Auth = r.Header.Get("Authorization")
		if want := "/internal/repositories/" + body.Path + "/migration/status"; r.URL.Path != want {
			t.Errorf("notification to %s, want %s", r.URL.Path, want)
		}
		c.mu.Lock()
		c.calls++
		code := http.StatusOK
		if c.answer != nil {
			code = c.answer(body, c.calls)
		}
		if code/100 == 2 {
			c.got = append(c.got, body)
		}
		c.mu.Unlock()
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"message":"answered"}`))
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *coordinator) url() string { return c.srv.URL + "/internal" }

func (c *coordinator) setAnswer(f func(r received, call int) int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = f
}

// notifications returns what was accepted so far.
func (c *coordinator) notifications() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.got...)
}

// waitFor waits until path's status was accepted and returns it.
func (c *coordinator) waitFor(t *testing.T, path string, status importserver.Status) received {
	t.Helper()
	var out received
	require.Eventually(t, func() bool {
		for _, r := range c.notifications() {
			if r.Path == path && r.Status == status {
				out = r
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "notification %s of %s", status, path)
	return out
}

// fixture is a started Server on a memory store with a scriptable
// importer, its API and a guarded /v2/ on one test HTTP server.
type fixture struct {
	srv   *importserver.Server
	store importserver.Store
	im    *importservertest.Importer
	coord *coordinator
	http  *httptest.Server
	v2    *v2Recorder
	cfg   importserver.Config
}

// v2Recorder stands for the registry's own /v2/ API: it answers 201 to
// everything and counts the requests that reached it.
type v2Recorder struct {
	mu   sync.Mutex
	hits int
}

func (v *v2Recorder) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	v.mu.Lock()
	v.hits++
	v.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (v *v2Recorder) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.hits
}

// knownRepos exist in the source; anything else gets 404.
var knownRepos = map[string]bool{"group/image": true, "group/other": true, "a": true, "b": true, "c": true, "native/one": true}

func baseConfig(t *testing.T, store importserver.Store, im importserver.Importer, coordURL string) importserver.Config {
	return importserver.Config{
		Importer: im,
		Repositories: importserver.RepositoriesFunc(func(_ context.Context, p string) (bool, error) {
			return knownRepos[p], nil
		}),
		Native:               func(_ context.Context, p string) (bool, error) { return p == "native/one", nil },
		Store:                store,
		Authorize:            importserver.BearerSecret(secret),
		MaxConcurrentImports: 3,
		Instance:             "registry-0",
		HeartbeatInterval:    20 * time.Millisecond,
		// Ten times what it was: a run whose heartbeats all fail for a
		// moment (each is bounded by HeartbeatInterval, on a pool of four
		// connections shared with deliveries and stats) must not be
		// swept by a test that is not about staleness.
		StaleAfter: 2 * time.Second,
		Notify: importserver.NotifyConfig{URL: coordURL, Secret: "notify-secret", Backoff: 5 * time.Millisecond,
			MaxBackoff: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond, StatsInterval: 10 * time.Millisecond},
		Logger: quietLogger(t),
	}
}

func newFixture(t *testing.T, mod func(*importserver.Config)) *fixture {
	t.Helper()
	f := &fixture{store: importservertest.NewStore(importservertest.StoreOptions{}),
		im: importservertest.NewImporter(importservertest.ImporterOptions{}), coord: newCoordinator(t), v2: &v2Recorder{}}
	f.cfg = baseConfig(t, f.store, f.im, f.coord.url())
	if mod != nil {
		mod(&f.cfg)
	}
	srv, err := importserver.New(f.cfg)
	require.NoError(t, err)
	f.srv = srv
	// No ServeMux: it would clean paths (and redirect) before the
	// handler could refuse them.
	api, v2 := srv.Handler(), srv.WriteGuard(f.v2)
	f.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			v2.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(f.http.Close)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return f
}

// call sends an authorized request to the import API.
func (f *fixture) call(t *testing.T, method, path, query string) (int, importserver.StatusResponse, http.Header) {
	t.Helper()
	return callAPI(t, f.http.URL, method, path, query, "Bearer "+secret, nil)
}

func callAPI(t *testing.T, base, method, path, query, auth string, body io.Reader) (int, importserver.StatusResponse, http.Header) {
	t.Helper()
	u := base + "/gitlab/v1/import/" + path + "/"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var st importserver.StatusResponse
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &st), "%s %s: %s", method, u, raw)
	}
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", method, u)
	return resp.StatusCode, st, resp.Header
}

// get reads the store's record.
func (f *fixture) get(t *testing.T, path string) importserver.Import {
	t.Helper()
	i, err := f.store.Get(context.Background(), path)
	require.NoError(t, err)
	return i
}

// waitStatus waits until the store records status for path.
func waitStatus(t *testing.T, s importserver.Store, path string, status importserver.Status) importserver.Import {
	t.Helper()
	var i importserver.Import
	require.Eventually(t, func() bool {
		var err error
		i, err = s.Get(context.Background(), path)
		return err == nil && i.Status == status
	}, 10*time.Second, 5*time.Millisecond, "%s to reach %s (last %s %q)", path, status, i.Status, i.Detail)
	return i
}

func errorCode(st importserver.StatusResponse) string {
	if len(st.Errors) == 0 {
		return ""
	}
	return st.Errors[0].Code
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// quietLogger discards logs unless FERRY_TEST_LOG is set.
func quietLogger(t testing.TB) *slog.Logger {
	if t == nil || os.Getenv("FERRY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func newMemStore() *importservertest.Store {
	return importservertest.NewStore(importservertest.StoreOptions{})
}

func newFixtureImporter() *importservertest.Importer {
	return importservertest.NewImporter(importservertest.ImporterOptions{})
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

const importserverFinal = transfer.FinalImport

type atomicBool = atomic.Bool

func bytesReader(p []byte) io.Reader { return bytes.NewReader(p) }
