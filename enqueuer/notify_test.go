package enqueuer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/storage"
)

const secret = "notification-secret"

// notifier sends notifications to a Handler through a real HTTP server.
type notifier struct {
	srv     *httptest.Server
	changes atomic.Int64
	mu      sync.Mutex
	changed []enqueuer.Repository
}

func newNotifier(t testing.TB, store enqueuer.Store) *notifier {
	t.Helper()
	n := &notifier{}
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{
		Store: store, Secret: secret, Logger: quiet,
		OnChange: func(ctx context.Context, r enqueuer.Repository) {
			require.NoError(t, context.Cause(ctx), "OnChange's context outlives the request")
			require.True(t, storage.UsesPrimary(ctx))
			n.changes.Add(1)
			n.mu.Lock()
			n.changed = append(n.changed, r)
			n.mu.Unlock()
		},
	})
	require.NoError(t, err)
	// Served directly: a ServeMux in front would clean "g/../r" and "g//r"
	// by redirecting before the handler could refuse them.
	n.srv = httptest.NewServer(h)
	t.Cleanup(n.srv.Close)
	return n
}

type answer struct {
	code int
	body map[string]any
}

func (n *notifier) send(t testing.TB, method, urlPath, auth, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+urlPath, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := n.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{code: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, &a.body), "answers are JSON: %q", raw)
	return a
}

func statusURL(path string) string {
	return "/api/v4/internal/registry/repositories/" + path + "/migration/status"
}

func (n *notifier) notify(t testing.TB, path, status string) answer {
	t.Helper()
	return n.send(t, http.MethodPut, statusURL(path), "Bearer "+secret, `{"status":"`+status+`"}`)
}

func TestHandlerMigrationFlow(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	r := addNew(t, store, "gitlab-org/gitlab-test/image", 1)[0]
	r = transition(t, store, r, enqueuer.EventStartPreImport, "")

	a := n.notify(t, r.Path, enqueuer.NotifyPreImportComplete)
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Equal(t, map[string]any{"migration_state": "pre_import_done", "changed": true}, a.body)
	require.EqualValues(t, 1, n.changes.Load())

	// A duplicate delivery is fine and changes nothing.
	a = n.notify(t, r.Path, enqueuer.NotifyPreImportComplete)
	require.Equal(t, http.StatusOK, a.code)
	require.Equal(t, false, a.body["changed"])
	require.EqualValues(t, 1, n.changes.Load(), "duplicates do not re-run the enqueuer")

	// import_complete before the import started does not fit.
	a = n.notify(t, r.Path, enqueuer.NotifyImportComplete)
	require.Equal(t, http.StatusBadRequest, a.code)
	require.Equal(t, "wrong migration state (pre_import_done)", a.body["message"])

	r = transition(t, store, get(t, store, r.Path), enqueuer.EventStartImport, "")
	a = n.notify(t, r.Path, enqueuer.NotifyPreImportComplete)
	require.Equal(t, http.StatusOK, a.code, "a late duplicate of pre_import_complete")
	a = n.notify(t, r.Path, enqueuer.NotifyImportComplete)
	require.Equal(t, http.StatusOK, a.code)
	require.Equal(t, "import_done", a.body["migration_state"])
	require.Equal(t, enqueuer.StateImportDone, get(t, store, r.Path).State)
	require.EqualValues(t, 2, n.changes.Load())
}

func TestHandlerFailuresRecordReason(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	rs := addNew(t, store, "g/r", 2)
	transition(t, store, rs[0], enqueuer.EventStartPreImport, "")
	a := n.send(t, http.MethodPut, statusURL(rs[0].Path), "Bearer "+secret, `{"status":"pre_import_failed","reason":"manifest unknown"}`)
	require.Equal(t, http.StatusOK, a.code)
	got := get(t, store, rs[0].Path)
	require.Equal(t, enqueuer.StateImportAborted, got.State)
	require.Equal(t, "manifest unknown", got.AbortReason)
	a = n.notify(t, rs[0].Path, enqueuer.NotifyPreImportFailed)
	require.Equal(t, http.StatusOK, a.code, "duplicate failure")

	r := transition(t, store, rs[1], enqueuer.EventStartPreImport, "")
	r = transition(t, store, r, enqueuer.EventFinishPreImport, "")
	transition(t, store, r, enqueuer.EventStartImport, "")
	// The registry's own field name for the reason is "detail".
	a = n.send(t, http.MethodPut, statusURL(rs[1].Path), "Bearer "+secret,
		`{"name":"r-1","path":"g/r-1","status":"import_failed","detail":"importing tags: broken pipe"}`)
	require.Equal(t, http.StatusOK, a.code)
	got = get(t, store, rs[1].Path)
	require.Equal(t, enqueuer.StateImportAborted, got.State)
	require.Equal(t, "importing tags: broken pipe", got.AbortReason)
}

// A long reason is cut to what the store keeps on a character boundary:
// Postgres rejects a split UTF-8 character, which reason[:1024] made of
// this one (an odd byte offset into two-byte characters).
func TestHandlerLongReasonKeepsWholeCharacters(t *testing.T) {
	store := newPostgresStore(t, openDB(t))
	n := newNotifier(t, store)
	r := addNew(t, store, "g/long", 1)[0]
	transition(t, store, r, enqueuer.EventStartPreImport, "")
	reason := "x" + strings.Repeat("é", 1000)
	a := n.send(t, http.MethodPut, statusURL(r.Path), "Bearer "+secret, `{"status":"pre_import_failed","reason":"`+reason+`"}`)
	require.Equal(t, http.StatusOK, a.code, a.body)
	got := get(t, store, r.Path)
	require.Equal(t, enqueuer.StateImportAborted, got.State)
	require.True(t, utf8.ValidString(got.AbortReason))
	require.True(t, strings.HasPrefix(reason, got.AbortReason))
	require.Len(t, got.AbortReason, 1023)
}

// A cancellation at the registry (its import API's DELETE, or a write
// during a pre-import) aborts the repository like a failure, so the
// enqueuer retries it; after the enqueuer stopped the import itself
// (aborted or skipped it) the notification is a duplicate.
func TestHandlerCancellations(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	rs := addNew(t, store, "g/r", 3)

	transition(t, store, rs[0], enqueuer.EventStartPreImport, "")
	a := n.send(t, http.MethodPut, statusURL(rs[0].Path), "Bearer "+secret,
		`{"status":"pre_import_canceled","detail":"canceled: the repository was written to during its pre-import"}`)
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Equal(t, true, a.body["changed"])
	got := get(t, store, rs[0].Path)
	require.Equal(t, enqueuer.StateImportAborted, got.State)
	require.Equal(t, "canceled: the repository was written to during its pre-import", got.AbortReason)
	a = n.notify(t, rs[0].Path, enqueuer.NotifyPreImportCanceled)
	require.Equal(t, http.StatusOK, a.code, "duplicate")
	require.Equal(t, false, a.body["changed"])

	r := transition(t, store, rs[1], enqueuer.EventStartPreImport, "")
	r = transition(t, store, r, enqueuer.EventFinishPreImport, "")
	transition(t, store, r, enqueuer.EventStartImport, "")
	a = n.notify(t, rs[1].Path, enqueuer.NotifyPreImportCanceled)
	require.Equal(t, http.StatusBadRequest, a.code, "a pre-import's cancellation does not end a final import")
	a = n.notify(t, rs[1].Path, enqueuer.NotifyImportCanceled)
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Equal(t, enqueuer.StateImportAborted, get(t, store, rs[1].Path).State)

	// The enqueuer canceled and skipped it itself before the registry's
	// notification arrived.
	r = transition(t, store, rs[2], enqueuer.EventStartPreImport, "")
	transition(t, store, r, enqueuer.EventSkip, enqueuer.SkipCanceled)
	a = n.notify(t, rs[2].Path, enqueuer.NotifyPreImportCanceled)
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Equal(t, false, a.body["changed"])
	require.Equal(t, enqueuer.StateImportSkipped, get(t, store, rs[2].Path).State)
	require.EqualValues(t, 2, n.changes.Load())
}

func TestHandlerWrongStateAndUnknownRepository(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	r := addNew(t, store, "g/r", 1)[0]
	a := n.notify(t, r.Path, enqueuer.NotifyPreImportComplete)
	require.Equal(t, http.StatusBadRequest, a.code)
	require.Equal(t, "wrong migration state (default)", a.body["message"])
	require.Equal(t, enqueuer.StateDefault, get(t, store, r.Path).State)

	a = n.notify(t, "g/unknown", enqueuer.NotifyPreImportComplete)
	require.Equal(t, http.StatusNotFound, a.code)
	require.Zero(t, n.changes.Load())
}

func TestHandlerAuth(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	r := transition(t, store, addNew(t, store, "g/r", 1)[0], enqueuer.EventStartPreImport, "")
	body := `{"status":"pre_import_complete"}`
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"", http.StatusUnauthorized},
		{"Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusForbidden},
		{"Bearer " + secret + "x", http.StatusForbidden},
		{"Bearer " + secret[:len(secret)-1], http.StatusForbidden},
	} {
		a := n.send(t, http.MethodPut, statusURL(r.Path), tc.auth, body)
		require.Equal(t, tc.code, a.code, "auth %q", tc.auth)
	}
	require.Equal(t, enqueuer.StatePreImporting, get(t, store, r.Path).State, "nothing changed without the secret")

	req, err := http.NewRequest(http.MethodPut, n.srv.URL+statusURL(r.Path), strings.NewReader(body))
	require.NoError(t, err)
	resp, err := n.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, `Bearer realm="ferry-enqueuer"`, resp.Header.Get("WWW-Authenticate"))

	// Auth comes before anything else: an unknown repository is not revealed.
	require.Equal(t, http.StatusForbidden, n.send(t, http.MethodPut, statusURL("g/unknown"), "Bearer nope", body).code)
	require.Equal(t, http.StatusOK, n.send(t, http.MethodPut, statusURL(r.Path), "bearer "+secret, body).code, "the scheme is case-insensitive")
}

func TestHandlerBadInput(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	r := transition(t, store, addNew(t, store, "g/r", 1)[0], enqueuer.EventStartPreImport, "")
	auth := "Bearer " + secret
	good := `{"status":"pre_import_complete"}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "PUT", statusURL(r.Path), `{"status":`, 400, "malformed JSON body"},
		{"not an object", "PUT", statusURL(r.Path), `["pre_import_complete"]`, 400, "malformed JSON body"},
		{"wrong type", "PUT", statusURL(r.Path), `{"status":5}`, 400, "malformed JSON body"},
		{"two values", "PUT", statusURL(r.Path), good + good, 400, "more than one value"},
		{"empty body", "PUT", statusURL(r.Path), ``, 400, "malformed JSON body"},
		{"no status", "PUT", statusURL(r.Path), `{"reason":"x"}`, 400, `missing "status"`},
		{"unknown status", "PUT", statusURL(r.Path), `{"status":"import_started"}`, 400, `unknown status "import_started"`},
		{"dot-dot", "PUT", statusURL("g/../r"), good, 400, `".."`},
		{"dot-dot escaped", "PUT", "/api/v4/internal/registry/repositories/g/%2E%2E/r/migration/status", good, 400, `".."`},
		{"empty segment", "PUT", statusURL("g//r"), good, 400, "empty segment"},
		{"leading slash", "PUT", statusURL("/g/r"), good, 400, "empty segment"},
		{"empty path", "PUT", statusURL(""), good, 400, "empty"},
		{"no path", "PUT", "/api/v4/internal/registry/repositories/migration/status", good, 400, "empty"},
		{"upper case", "PUT", statusURL("G/R"), good, 400, "invalid repository path"},
		{"wrong suffix", "PUT", "/api/v4/internal/registry/repositories/g/r/migration", good, 404, "no such endpoint"},
		{"GET", "GET", statusURL(r.Path), ``, 405, "method not allowed"},
		{"POST", "POST", statusURL(r.Path), good, 405, "method not allowed"},
		{"huge body", "PUT", statusURL(r.Path), `{"status":"pre_import_complete","reason":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "body larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := n.send(t, tc.method, tc.path, auth, tc.body)
			require.Equal(t, tc.code, a.code, a.body)
			require.Contains(t, a.body["message"], tc.msg)
		})
	}
	require.Equal(t, enqueuer.StatePreImporting, get(t, store, r.Path).State, "bad requests change nothing")
	require.Zero(t, n.changes.Load())

	_, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store})
	require.ErrorIs(t, err, enqueuer.ErrConfig)
	_, err = enqueuer.NewHandler(enqueuer.HandlerOptions{Secret: "x"})
	require.ErrorIs(t, err, enqueuer.ErrConfig)
}

// Many deliveries of one notification at once: exactly one applies it.
func TestHandlerConcurrentDuplicates(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	n := newNotifier(t, store)
	r := transition(t, store, addNew(t, store, "g/r", 1)[0], enqueuer.EventStartPreImport, "")
	var wg sync.WaitGroup
	var changed atomic.Int64
	for range 20 {
		wg.Go(func() {
			a := n.notify(t, r.Path, enqueuer.NotifyPreImportComplete)
			require.Equal(t, http.StatusOK, a.code)
			if a.body["changed"] == true {
				changed.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, changed.Load())
	require.EqualValues(t, 1, n.changes.Load())
}

// The OnChange callback re-runs the enqueuer: a completed pre-import gets
// its final import at once.
func TestHandlerCallbackRerunsEnqueuer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 1)
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(1)})
	_, err := enq.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatePreImporting, get(t, e.store, "g/r-0").State)

	runs := make(chan enqueuer.Report, 1)
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{
		Store: e.store, Secret: secret, Logger: quiet,
		OnChange: func(ctx context.Context, _ enqueuer.Repository) {
			rep, err := enq.Run(ctx)
			require.NoError(t, err)
			runs <- rep
		},
	})
	require.NoError(t, err)
	e.reg.Complete("g/r-0")
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPut, "/repositories/g/r-0/migration/status", strings.NewReader(`{"status":"pre_import_complete"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	rep := <-runs
	require.Equal(t, 1, rep.Count(enqueuer.ImportFinal))
	require.Equal(t, enqueuer.StateImporting, get(t, e.store, "g/r-0").State)
}

// A secret rotation without downtime: old only, then old and new while
// the registry switches, then new only; requests carrying the secret in
// use never fail while the set changes under them.
func TestHandlerSecretRotation(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	const old, next = "old-secret", "new-secret"
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secret: old, Logger: quiet})
	require.NoError(t, err)
	// A notification for an unknown repository answers 404 once
	// authorised, 403 when not: enough to tell the two apart.
	code := func(secret string) int {
		req := httptest.NewRequest(http.MethodPut, statusURL("g/unknown"), strings.NewReader(`{"status":"import_complete"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, http.StatusNotFound, code(old))
	require.Equal(t, http.StatusForbidden, code(next))

	// While the set changes, the registry keeps sending the old secret,
	// then switches to the new one; none of its requests is refused.
	var (
		stop     atomic.Bool
		refused  atomic.Int64
		sent     atomic.Int64
		useNew   atomic.Bool
		registry sync.WaitGroup
		// switching is held (read) from choosing a secret until the answer
		// is in, so the switch below can wait for requests that chose the
		// old secret: a registry drops the old secret only after its last
		// request with it was answered.
		switching sync.RWMutex
	)
	for range 4 {
		registry.Go(func() {
			for !stop.Load() {
				switching.RLock()
				s := old
				if useNew.Load() {
					s = next
				}
				if code(s) != http.StatusNotFound {
					refused.Add(1)
				}
				switching.RUnlock()
				sent.Add(1)
			}
		})
	}
	require.NoError(t, h.SetSecrets(old, next))
	time.Sleep(20 * time.Millisecond)
	switching.Lock()
	useNew.Store(true)
	switching.Unlock()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, h.SetSecrets(next))
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	registry.Wait()
	require.Zero(t, refused.Load(), "of %d requests", sent.Load())
	require.Positive(t, sent.Load())
	require.Equal(t, http.StatusForbidden, code(old), "the old secret is gone")
	require.Equal(t, http.StatusNotFound, code(next))

	// Several secrets from the start; bad sets are refused and change nothing.
	h, err = enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secrets: []string{"a", "b"}, Logger: quiet})
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, code("b"))
	require.ErrorIs(t, h.SetSecrets(), enqueuer.ErrConfig)
	require.ErrorIs(t, h.SetSecrets("c", ""), enqueuer.ErrConfig)
	require.Equal(t, http.StatusNotFound, code("a"))
	_, err = enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secrets: []string{""}})
	require.ErrorIs(t, err, enqueuer.ErrConfig)
}
