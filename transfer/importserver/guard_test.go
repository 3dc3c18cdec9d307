package importserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

func TestDistributionWrite(t *testing.T) {
	for _, c := range []struct {
		method, path, repo string
		write              bool
	}{
		{"PUT", "/v2/group/image/manifests/latest", "group/image", true},
		{"DELETE", "/v2/group/image/manifests/sha256:abc", "group/image", true},
		{"POST", "/v2/group/image/blobs/uploads/", "group/image", true},
		{"PATCH", "/v2/group/image/blobs/uploads/1234-abcd", "group/image", true},
		{"PUT", "/v2/group/image/blobs/uploads/1234-abcd", "group/image", true},
		{"DELETE", "/v2/group/image/blobs/sha256:abc", "group/image", true},
		{"PUT", "/v2/a/blobs/b/manifests/v1", "a/blobs/b", true},
		{"POST", "/v2/a/manifests/b/blobs/uploads/", "a/manifests/b", true},
		{"PUT", "/registry/v2/group/image/manifests/latest", "group/image", true},
		{"GET", "/v2/group/image/manifests/latest", "", false},
		{"HEAD", "/v2/group/image/blobs/sha256:abc", "", false},
		{"GET", "/v2/group/image/tags/list", "", false},
		{"PUT", "/v2/", "", false},
		{"PUT", "/v2/group/image/tags/list", "", false},
		{"PUT", "/other/group/image/manifests/latest", "", false},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		repo, write := importserver.DistributionWrite(r)
		require.Equal(t, c.write, write, "%s %s", c.method, c.path)
		require.Equal(t, c.repo, repo, "%s %s", c.method, c.path)
	}
}

func push(t *testing.T, base, method, path string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

func TestWriteGuard(t *testing.T) {
	f := newFixture(t, nil)
	// No import: writes pass.
	resp, _ := push(t, f.http.URL, http.MethodPut, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	// During a pre-import a write cancels it and goes through.
	f.im.Hold("group/image")
	code, _, _ := f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return f.im.Running("group/image") == 1 }, 5*time.Second, time.Millisecond)
	resp, _ = push(t, f.http.URL, http.MethodPatch, "/v2/group/image/blobs/uploads/abc")
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	n := f.coord.waitFor(t, "group/image", importserver.StatusPreImportCanceled)
	require.Equal(t, "canceled: the repository was written to during its pre-import", n.Detail)

	// During a final import the repository is read-only; reads pass.
	f.im.Release("group/image")
	code, _, _ = f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
	f.im.Hold("group/image")
	code, _, _ = f.call(t, http.MethodPut, "group/image", "import_type=final")
	require.Equal(t, http.StatusAccepted, code)
	hits := f.v2.count()
	for _, w := range []struct{ method, path string }{
		{http.MethodPut, "/v2/group/image/manifests/latest"},
		{http.MethodPost, "/v2/group/image/blobs/uploads/"},
		{http.MethodDelete, "/v2/group/image/blobs/sha256:abc"},
	} {
		resp, body := push(t, f.http.URL, w.method, w.path)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, w.path)
		require.Equal(t, "60", resp.Header.Get("Retry-After"))
		errs := body["errors"].([]any)
		e := errs[0].(map[string]any)
		require.Equal(t, "UNAVAILABLE", e["code"])
		require.Contains(t, e["message"], "read-only")
		require.Equal(t, "import_in_progress", e["detail"].(map[string]any)["import_status"])
	}
	require.Equal(t, hits, f.v2.count(), "no refused write reached the registry")
	resp, _ = push(t, f.http.URL, http.MethodGet, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "reads pass")
	resp, _ = push(t, f.http.URL, http.MethodPut, "/v2/group/other/manifests/latest")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "other repositories are writable")

	f.im.Release("group/image")
	f.coord.waitFor(t, "group/image", importserver.StatusImportComplete)
	resp, _ = push(t, f.http.URL, http.MethodPut, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "writable again once imported")
}

func TestWriteGuardOptions(t *testing.T) {
	var mu sync.Mutex
	var actions []importserver.GuardAction
	obs := importserver.ObserverFuncs{OnWriteGuarded: func(_ context.Context, e importserver.GuardEvent) {
		mu.Lock()
		actions = append(actions, e.Action)
		mu.Unlock()
	}}
	f := newFixture(t, func(c *importserver.Config) {
		c.Observer = obs
		c.Guard.AllowPreImportWrites = true
		c.Guard.Refuse = func(w http.ResponseWriter, _ *http.Request, ref importserver.Refusal) {
			require.ErrorIs(t, ref.Err, importserver.ErrReadOnly)
			w.WriteHeader(http.StatusConflict) // the registry's own format
			_, _ = w.Write([]byte(`{"errors":[{"code":"REPOSITORY_READ_ONLY"}]}`))
		}
	})
	f.im.Hold("group/image")
	code, _, _ := f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	resp, _ := push(t, f.http.URL, http.MethodPut, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, importserver.StatusPreImportInProgress, f.get(t, "group/image").Status, "allowed: the pre-import goes on")
	f.im.Release("group/image")
	f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
	f.im.Hold("group/image")
	code, _, _ = f.call(t, http.MethodPut, "group/image", "import_type=final")
	require.Equal(t, http.StatusAccepted, code)
	resp, body := push(t, f.http.URL, http.MethodPut, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Equal(t, "REPOSITORY_READ_ONLY", body["errors"].([]any)[0].(map[string]any)["code"])
	f.im.Release("group/image")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []importserver.GuardAction{importserver.GuardAllowedDuringPreImport, importserver.GuardRefused}, actions)
}

// When the import state cannot be read, writes are refused: letting one
// through could put it half-way into a final import.
func TestWriteGuardFailsClosed(t *testing.T) {
	store := &failingGet{Store: newMemStore()}
	f := newFixture(t, func(c *importserver.Config) { c.Store = store })
	store.fail.Store(true)
	resp, body := push(t, f.http.URL, http.MethodPut, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, body["errors"].([]any)[0].(map[string]any)["message"], "unavailable")
	require.Zero(t, f.v2.count())
	resp, _ = push(t, f.http.URL, http.MethodGet, "/v2/group/image/manifests/latest")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "reads never ask the store")
}

type failingGet struct {
	*importservertest.Store
	fail atomicBool
}

func (s *failingGet) Get(ctx context.Context, path string) (importserver.Import, error) {
	if s.fail.Load() {
		return importserver.Import{}, errors.New("connection refused")
	}
	return s.Store.Get(ctx, path)
}

// A final import waits for the writes let through before it started, and
// fails when they outlast DrainTimeout.
func TestFinalImportDrainsWrites(t *testing.T) {
	inWrite, release := make(chan struct{}), make(chan struct{})
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			close(inWrite)
			<-release
		}
		w.WriteHeader(http.StatusCreated)
	})
	f := newFixture(t, func(c *importserver.Config) { c.Guard.DrainTimeout = 5 * time.Second })
	guarded := newServer(t, f.srv.WriteGuard(blocking))
	code, _, _ := f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)

	done := make(chan int)
	go func() {
		resp, _ := push(t, guarded.URL, http.MethodPut, "/v2/group/image/manifests/latest")
		done <- resp.StatusCode
	}()
	<-inWrite
	code, _, _ = f.call(t, http.MethodPut, "group/image", "import_type=final")
	require.Equal(t, http.StatusAccepted, code)
	time.Sleep(100 * time.Millisecond)
	require.Zero(t, f.im.Calls(importserverFinal, "group/image"), "the import waits for the write")
	close(release)
	require.Equal(t, http.StatusCreated, <-done)
	f.coord.waitFor(t, "group/image", importserver.StatusImportComplete)
	require.Equal(t, 1, f.im.Calls(importserverFinal, "group/image"))

	// A write that outlasts DrainTimeout fails the import.
	g := newFixture(t, func(c *importserver.Config) { c.Guard.DrainTimeout = 50 * time.Millisecond })
	inWrite2, release2 := make(chan struct{}), make(chan struct{})
	defer close(release2)
	guarded2 := newServer(t, g.srv.WriteGuard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(inWrite2)
		<-release2
	})))
	code, _, _ = g.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	g.coord.waitFor(t, "a", importserver.StatusPreImportComplete)
	go func() { _, _ = http.Post(guarded2.URL+"/v2/a/blobs/uploads/", "", nil) }()
	<-inWrite2
	code, _, _ = g.call(t, http.MethodPut, "a", "import_type=final")
	require.Equal(t, http.StatusAccepted, code)
	n := g.coord.waitFor(t, "a", importserver.StatusImportFailed)
	require.Contains(t, n.Detail, "still running after 50ms")
	require.Zero(t, g.im.Calls(importserverFinal, "a"))
}
