package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// evil is attacker-influenced text as it may come back in an abort
// reason, an error message or a holder name.
const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// fixture is a dashboard on Ferry objects, in memory (bbmtest,
// enqueuertest, leasetest) or on real Postgres (bbm's, the enqueuer's and
// pglease's stores): three migrations (one failed with failed jobs, one
// paused, one finished), repositories in every state, a real Enqueuer on
// them for the import actions, and a held lease.
type fixture struct {
	t      *testing.T
	admin  *bbm.Admin
	store  enqueuer.Store
	locker lease.Locker
	srv    *httptest.Server
	client *http.Client
	prefix string
	allow  atomic.Bool
	asked  atomic.Int64 // Authorize calls
}

type fixtureOptions struct {
	prefix   string
	readOnly bool
	// postgres puts the stores on a throwaway Postgres database.
	postgres bool
}

// backends runs fn on the in-memory stores and on Postgres.
func backends(t *testing.T, fn func(t *testing.T, o fixtureOptions)) {
	t.Run("memory", func(t *testing.T) { fn(t, fixtureOptions{}) })
	t.Run("postgres", func(t *testing.T) { fn(t, fixtureOptions{postgres: true}) })
}

// backing returns the stores of a fixture: bbm's worker options, the
// enqueuer's store and a lease Locker whose holder is named evil.
func backing(t *testing.T, o fixtureOptions) (storage.Handle, bbm.Options, enqueuer.Store, lease.Locker) {
	t.Helper()
	opts := bbm.Options{Logger: slog.New(slog.DiscardHandler), MaxJobAttempts: 1, RetryBackoff: time.Millisecond,
		Interval: time.Millisecond, Adaptive: bbm.AdaptiveOptions{Off: true}}
	if !o.postgres {
		opts.Store = bbmtest.NewStore(bbmtest.StoreOptions{})
		opts.Catalog = bbmtest.NewCatalog(
			bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 100},
			bbmtest.Table{Name: "small", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 5})
		return nil, opts, enqueuertest.NewStore(enqueuertest.StoreOptions{}), leasetest.NewLocker(leasetest.Options{Holder: evil})
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: storagetest.URL(t)})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	_, err = db.Exec(ctx, `CREATE TABLE items (id bigint PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 100);
		CREATE TABLE small (id bigint PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 5); ANALYZE items, small`)
	require.NoError(t, err)
	store, err := enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{})
	require.NoError(t, err)
	return db, opts, store, pglease.New(db, pglease.Options{Holder: evil})
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, prefix: o.prefix}
	f.allow.Store(true)

	// bbm: "backfill" fails on keys 41..50 (one attempt), so it ends
	// failed with one failed job; "later" is registered paused; "done"
	// finishes.
	db, opts, store, locker := backing(t, o)
	w := bbm.NewSyncWorker(db, opts)
	require.NoError(t, w.Register(bbm.WorkFunc("fill", func(_ context.Context, _ storage.Querier, b bbm.Batch) error {
		if lo, _ := b.StartInt(); lo == 41 {
			return errors.New(evil)
		}
		return nil
	})))
	f.admin = w.Admin()
	for _, d := range []bbm.Definition{
		{Name: "backfill", Table: "items", Column: "id", Work: "fill", BatchSize: 10},
		{Name: "team/later", Table: "items", Column: "id", Work: "fill", BatchSize: 10, Paused: true},
		{Name: "done", Table: "small", Column: "id", Work: "fill", BatchSize: 10},
	} {
		_, err := f.admin.Register(ctx, d)
		require.NoError(t, err)
	}
	require.ErrorIs(t, w.Run(ctx), bbm.ErrMigrationFailed)

	// enqueuer: 30 repositories; a few moved to other states.
	f.store = store
	base := time.Now().Add(-time.Hour)
	for i := range 30 {
		group := []string{"alpha", "beta", "gamma"}[i%3]
		_, err := f.store.Add(ctx, enqueuer.NewRepository{Path: fmt.Sprintf("%s/repo-%02d", group, i), TagCount: i,
			CreatedAt: base.Add(time.Duration(i) * time.Second)})
		require.NoError(t, err)
	}
	f.move("alpha/repo-00", enqueuer.EventStartPreImport)
	f.move("beta/repo-01", enqueuer.EventStartPreImport, enqueuer.EventFinishPreImport, enqueuer.EventStartImport, enqueuer.EventFinishImport)
	f.move("gamma/repo-02", enqueuer.EventStartPreImport, enqueuer.EventAbort)
	f.move("alpha/repo-03", enqueuer.EventSkip)
	f.move("beta/repo-04", enqueuer.EventStartPreImport, enqueuer.EventFinishPreImport, enqueuer.EventStartImport)

	registry := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{})
	f.locker = locker
	enq, err := enqueuer.New(enqueuer.Config{Store: f.store, Registry: registry, Locker: f.locker,
		Capacity: func(context.Context) int { return 3 }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = f.locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Minute)
	require.NoError(t, err)

	cfg := dashboard.Config{
		Prefix: o.prefix, Title: "Test <Ferry>",
		Migrations: f.admin, Repositories: f.store, Imports: enq,
		Capacity: func(context.Context) int { return 3 },
		// Made on the request, so that the page shows it at once (the
		// default makes it in the background: TestForecastShown).
		Forecast: enq, ForecastMaxAge: -1,
		Leases: []dashboard.LeaseKey{{Title: "enqueuer", Key: enqueuer.DefaultLeaseKey, Locker: f.locker},
			{Key: "free/key", Locker: f.locker}},
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if !o.readOnly {
		cfg.Authorize = func(r *http.Request, a dashboard.Action) error {
			f.asked.Add(1)
			if !f.allow.Load() {
				return fmt.Errorf("user %s may not %s", evil, a.Kind)
			}
			return nil
		}
	}
	h, err := dashboard.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	if o.prefix == "" {
		mux.Handle("/", h)
	} else {
		mux.Handle(o.prefix+"/", h)
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "host page", http.StatusTeapot) })
	}
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	f.client = &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// move applies events to the repository at path.
func (f *fixture) move(path string, events ...enqueuer.Event) {
	f.t.Helper()
	for _, ev := range events {
		r, err := f.store.Get(context.Background(), path)
		require.NoError(f.t, err)
		reason := ""
		if ev.NeedsReason() {
			reason = "reason: " + evil
		}
		_, err = f.store.Transition(context.Background(), enqueuer.Change{ID: r.ID, From: r.State, Event: ev, Reason: reason})
		require.NoError(f.t, err)
	}
}

// url is the dashboard's URL of path (which starts with /).
func (f *fixture) url(path string) string { return f.srv.URL + f.prefix + path }

// get fetches a dashboard path and returns the status and body.
func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := f.client.Get(f.url(path))
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp.StatusCode, string(b)
}

// getJSON fetches a JSON endpoint into v and returns the status.
func (f *fixture) getJSON(path string, v any) int {
	f.t.Helper()
	resp, err := f.client.Get(f.url(path))
	require.NoError(f.t, err)
	defer resp.Body.Close()
	require.Equal(f.t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	require.NoError(f.t, json.NewDecoder(resp.Body).Decode(v))
	return resp.StatusCode
}

var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token loads a page and returns its forms' CSRF token (the client keeps
// the cookie).
func (f *fixture) token(path string) string {
	f.t.Helper()
	code, body := f.get(path)
	require.Equal(f.t, http.StatusOK, code, body)
	m := tokenRE.FindStringSubmatch(body)
	require.NotNil(f.t, m, "no action form on %s", path)
	return m[1]
}

// post submits an action form and returns the status, Location and body.
func (f *fixture) post(form url.Values) (int, string, string) {
	f.t.Helper()
	resp, err := f.client.PostForm(f.url("/actions"), form)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// postWith submits an action form with one more header and returns the
// status.
func (f *fixture) postWith(form url.Values, header, value string) int {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url("/actions"), strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(header, value)
	resp, err := f.client.Do(req)
	require.NoError(f.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func action(token string, kind dashboard.ActionKind, target string) url.Values {
	return url.Values{"csrf": {token}, "action": {string(kind)}, "target": {target}}
}

func (f *fixture) migrationStatus(name string) bbm.Status {
	f.t.Helper()
	m, err := f.admin.Migration(context.Background(), name)
	require.NoError(f.t, err)
	return m.Status
}

func (f *fixture) state(path string) enqueuer.State {
	f.t.Helper()
	r, err := f.store.Get(context.Background(), path)
	require.NoError(f.t, err)
	return r.State
}

// held reports whether the enqueuer's lease is held.
func (f *fixture) held() bool {
	f.t.Helper()
	h, err := lease.Inspect(context.Background(), f.locker, enqueuer.DefaultLeaseKey)
	require.NoError(f.t, err)
	return h.Held
}

// requireEscaped checks that body shows evil only escaped.
func requireEscaped(t *testing.T, body string) {
	t.Helper()
	require.NotContains(t, body, "<script>alert", "unescaped script")
	require.NotContains(t, body, "<img src=x", "unescaped tag")
	require.NotContains(t, strings.ToLower(body), "<script>alert")
}

var errConnRefused = errors.New("connection refused")

func mustCompile(expr string) *regexp.Regexp { return regexp.MustCompile(expr) }

func itoa(n int64) string { return fmt.Sprint(n) }

func httptestGet(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// forecastFunc adapts a function to dashboard.Forecaster.
type forecastFunc func(context.Context, enqueuer.ForecastOptions) (enqueuer.Forecast, error)

func (fn forecastFunc) Forecast(ctx context.Context, opts enqueuer.ForecastOptions) (enqueuer.Forecast, error) {
	return fn(ctx, opts)
}

// plainLocker is a lease.Locker that cannot inspect keys.
type plainLocker struct{}

func (plainLocker) Acquire(context.Context, string, time.Duration) (lease.Lease, error) {
	return nil, errors.New("not used")
}
