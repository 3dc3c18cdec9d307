package dashboard_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// The overview shows every source: migrations with progress and failed
// jobs, repositories per state with capacity and forecast, leases; its
// JSON carries the same figures.
func TestOverview(t *testing.T) { backends(t, testOverview) }

func testOverview(t *testing.T, o fixtureOptions) {
	f := newFixture(t, o)
	code, body := f.get("/")
	require.Equal(t, http.StatusOK, code, body)
	for _, want := range []string{
		`data-migration="backfill"`, `data-migration="team/later"`, `href="/migrations/team/later"`,
		`<span class="status s-failed">failed</span>`, `<span class="status s-paused">paused</span>`,
		`<td data-state="default"><a href="/imports?state=default">25</a></td>`,
		`<td data-state="import_aborted"><a href="/imports?state=import_aborted">1</a></td>`,
		`<span class="big" id="in-progress">2</span>`, `<span id="capacity">3</span>`,
		`id="forecast"`, `<span class="free">free</span>`,
		`<title>Test &lt;Ferry&gt;</title>`,
	} {
		require.Contains(t, body, want)
	}
	requireEscaped(t, body)
	require.Contains(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "the holder's name, escaped")

	var ov dashboard.Overview
	require.Equal(t, http.StatusOK, f.getJSON("/api/overview", &ov))
	require.Len(t, ov.Migrations.List, 3)
	failed := ov.Migrations.List[0]
	require.Equal(t, "backfill", failed.Name)
	require.Equal(t, bbm.StatusFailed, failed.Status)
	require.Equal(t, 1, failed.Jobs.Failed)
	require.Len(t, failed.FailedJobs, 1)
	require.Contains(t, failed.FailedJobs[0].Error, evil, "JSON carries the message as is")
	require.False(t, failed.ETA.Known())
	require.Equal(t, 30, ov.Imports.Total)
	require.Equal(t, 2, ov.Imports.InProgress)
	require.Equal(t, 3, *ov.Imports.Capacity)
	require.Equal(t, 25+1, ov.Imports.Waiting)
	// The Enqueuer's forecast covers what is in progress and waiting, at
	// the dashboard's capacity.
	fc := ov.Imports.Forecast
	require.NotNil(t, fc)
	require.Empty(t, fc.Error)
	require.Equal(t, 2+26, fc.Remaining)
	require.Equal(t, 3, fc.Capacity)
	finished, running := 0, 0
	for _, b := range fc.Buckets {
		finished += b.Finished
		running += b.InProgress
	}
	require.Equal(t, 1, finished, "beta/repo-01 is measured")
	require.Equal(t, 2, running)
	require.Len(t, ov.Leases, 2)
	require.True(t, ov.Leases[0].Held)
	require.Equal(t, evil, ov.Leases[0].Holder)
	require.False(t, ov.Leases[1].Held)
	require.Equal(t, "free/key", ov.Leases[1].Title)
}

// Mounted under a prefix, every link and form stays under it, the bare
// prefix redirects, and other paths are not the dashboard's.
func TestMountedUnderAPrefix(t *testing.T) {
	f := newFixture(t, fixtureOptions{prefix: "/ops/ferry"})
	code, body := f.get("/")
	require.Equal(t, http.StatusOK, code, body)
	for _, link := range regexpAll(`\s(?:href|src|action)="([^"]*)"`, body) {
		if link == "" || strings.HasPrefix(link, "data:") {
			continue
		}
		require.True(t, strings.HasPrefix(link, "/ops/ferry/"), "link %q outside the prefix", link)
	}
	for _, p := range []string{"/static/dashboard.css", "/static/dashboard.js", "/imports", "/migrations/backfill",
		"/repository?path=alpha%2Frepo-00", "/api/overview"} {
		code, _ := f.get(p)
		require.Equal(t, http.StatusOK, code, p)
	}
	resp, err := f.client.Get(f.srv.URL + "/ops/ferry")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, resp.StatusCode)
	require.Equal(t, "/ops/ferry/", resp.Header.Get("Location"))
	// Mounted on a mux pattern without the trailing slash, the handler
	// redirects by itself.
	h, err := dashboard.New(dashboard.Config{Prefix: "/x", Leases: []dashboard.LeaseKey{{Key: "k", Locker: f.locker}}})
	require.NoError(t, err)
	rec := httptestGet(h, "/x")
	require.Equal(t, http.StatusMovedPermanently, rec.Code)
	require.Equal(t, "/x/", rec.Header().Get("Location"))
	require.Equal(t, http.StatusNotFound, httptestGet(h, "/y/").Code)
	resp, err = f.client.Get(f.srv.URL + "/imports")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTeapot, resp.StatusCode, "the host's own page")

	// An action's redirect stays under the prefix too.
	tok := f.token("/migrations/team/later")
	code, loc, _ := f.post(action(tok, dashboard.ResumeMigration, "team/later"))
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/ops/ferry/migrations/team/later?done=resume_migration", loc)
}

func regexpAll(expr, s string) []string {
	var out []string
	for _, m := range mustCompile(expr).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// The migration page pages through jobs, filters them by status, shows
// the last errors escaped, and offers the button its status allows.
func TestMigrationPage(t *testing.T) { backends(t, testMigrationPage) }

func testMigrationPage(t *testing.T, o fixtureOptions) {
	f := newFixture(t, o)
	var p dashboard.MigrationPage
	require.Equal(t, http.StatusOK, f.getJSON("/api/migrations/backfill?limit=4", &p))
	require.Len(t, p.Jobs, 4)
	require.NotZero(t, p.Next)
	var all []int64
	for after := int64(0); ; {
		var page dashboard.MigrationPage
		require.Equal(t, http.StatusOK, f.getJSON("/api/migrations/backfill?limit=4&after="+itoa(after), &page))
		for _, j := range page.Jobs {
			all = append(all, j.ID)
		}
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	require.Len(t, all, 10, "10 ranges of 10 rows, each listed once")
	var failed dashboard.MigrationPage
	require.Equal(t, http.StatusOK, f.getJSON("/api/migrations/backfill?status=failed", &failed))
	require.Len(t, failed.Jobs, 1)
	require.Equal(t, "41", failed.Jobs[0].Start)

	code, body := f.get("/migrations/backfill")
	require.Equal(t, http.StatusOK, code, body)
	requireEscaped(t, body)
	require.Contains(t, body, `id="last-errors"`)
	require.Contains(t, body, `data-action="retry_migration"`)
	require.NotContains(t, body, `data-action="pause_migration"`)
	_, body = f.get("/migrations/team/later")
	require.Contains(t, body, `data-action="resume_migration"`)
	_, body = f.get("/migrations/done")
	require.NotContains(t, body, `data-action=`, "a finished migration has no button")
}

// The imports page filters by state and path prefix, pages in path order,
// lists what is in progress and the latest failures with their reasons.
func TestImportsPage(t *testing.T) { backends(t, testImportsPage) }

func testImportsPage(t *testing.T, o fixtureOptions) {
	f := newFixture(t, o)
	var p dashboard.ImportsPage
	require.Equal(t, http.StatusOK, f.getJSON("/api/imports?prefix=beta/&limit=4", &p))
	require.Len(t, p.Repositories, 4)
	require.Equal(t, "beta/repo-01", p.Repositories[0].Path)
	require.Equal(t, enqueuer.StateImportDone, p.Repositories[0].State)
	var paths []string
	for after := ""; ; {
		var page dashboard.ImportsPage
		require.Equal(t, http.StatusOK, f.getJSON("/api/imports?prefix=beta/&limit=4&after="+url.QueryEscape(after), &page))
		for _, r := range page.Repositories {
			paths = append(paths, r.Path)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	require.Len(t, paths, 10)
	require.IsIncreasing(t, paths)
	var waiting dashboard.ImportsPage
	require.Equal(t, http.StatusOK, f.getJSON("/api/imports?state=default&prefix=alpha/", &waiting))
	require.Len(t, waiting.Repositories, 8, "alpha has 10, one pre-importing and one skipped")
	require.Len(t, p.InProgress, 2)
	require.Equal(t, "alpha/repo-00", p.InProgress[0].Path, "longest in progress first")
	require.Len(t, p.Aborted, 1)
	require.Contains(t, p.Aborted[0].AbortReason, evil)
	require.Len(t, p.Skipped, 1)

	code, body := f.get("/imports?state=import_skipped")
	require.Equal(t, http.StatusOK, code, body)
	requireEscaped(t, body)
	require.Contains(t, body, `<option value="import_skipped" selected>`)
	require.Contains(t, body, `data-action="retry_import" data-target="alpha/repo-03"`)
	require.Contains(t, body, `data-action="cancel_import" data-target="alpha/repo-00"`)

	code, body = f.get("/repository?path=gamma/repo-02")
	require.Equal(t, http.StatusOK, code, body)
	requireEscaped(t, body)
	require.Contains(t, body, `<h1 id="repository-path">gamma/repo-02</h1>`)
}

// Actions change state: pause, resume and retry a migration; retry and
// cancel a repository; break a lease. Each redirects to its page, which
// says what was done.
func TestActions(t *testing.T) { backends(t, testActions) }

func testActions(t *testing.T, o fixtureOptions) {
	f := newFixture(t, o)
	tok := f.token("/")
	for _, c := range []struct {
		kind   dashboard.ActionKind
		target string
		check  func()
	}{
		{dashboard.ResumeMigration, "team/later", func() { require.Equal(t, bbm.StatusActive, f.migrationStatus("team/later")) }},
		{dashboard.PauseMigration, "team/later", func() { require.Equal(t, bbm.StatusPaused, f.migrationStatus("team/later")) }},
		{dashboard.RetryMigration, "backfill", func() { require.Equal(t, bbm.StatusRunning, f.migrationStatus("backfill")) }},
		{dashboard.RetryImport, "alpha/repo-03", func() { require.Equal(t, enqueuer.StateDefault, f.state("alpha/repo-03")) }},
		{dashboard.CancelImport, "gamma/repo-05", func() { require.Equal(t, enqueuer.StateImportSkipped, f.state("gamma/repo-05")) }},
		{dashboard.BreakLease, enqueuer.DefaultLeaseKey, func() {
			require.False(t, f.held())
		}},
	} {
		code, loc, body := f.post(action(tok, c.kind, c.target))
		require.Equal(t, http.StatusSeeOther, code, "%s %s: %s", c.kind, c.target, body)
		c.check()
		code, page := f.get(strings.TrimPrefix(loc, f.prefix))
		require.Equal(t, http.StatusOK, code, loc)
		require.Contains(t, page, `id="notice"`, "%s: the page says what was done", c.kind)
	}
	// JSON clients get JSON.
	require.Equal(t, http.StatusOK, f.postWith(action(tok, dashboard.PauseMigration, "backfill"), "Accept", "application/json"))
	require.Equal(t, bbm.StatusPaused, f.migrationStatus("backfill"))
}

// Bad input gets a clear 4xx and changes nothing.
func TestBadInputChangesNothing(t *testing.T) { backends(t, testBadInputChangesNothing) }

func testBadInputChangesNothing(t *testing.T, o fixtureOptions) {
	f := newFixture(t, o)
	for path, want := range map[string]int{
		"/migrations/nope":                            http.StatusNotFound,
		"/api/migrations/nope":                        http.StatusNotFound,
		"/migrations/backfill?status=done":            http.StatusBadRequest,
		"/migrations/backfill?after=-3":               http.StatusBadRequest,
		"/migrations/backfill?after=x":                http.StatusBadRequest,
		"/migrations/backfill?limit=0":                http.StatusBadRequest,
		"/migrations/backfill?limit=501":              http.StatusBadRequest,
		"/migrations/backfill?limit=1&limit=2":        http.StatusBadRequest,
		"/migrations/backfill?colour=red":             http.StatusBadRequest,
		"/imports?state=imported":                     http.StatusBadRequest,
		"/imports?after=a//b":                         http.StatusBadRequest,
		"/imports?prefix=" + strings.Repeat("a", 300): http.StatusBadRequest,
		"/imports?%zz":                                http.StatusBadRequest,
		"/imports?done=drop_tables":                   http.StatusBadRequest,
		"/api/imports?state=%3Cscript%3E":             http.StatusBadRequest,
		"/repository":                                 http.StatusBadRequest,
		"/repository?path=../etc/passwd":              http.StatusBadRequest,
		"/repository?path=no/such":                    http.StatusNotFound,
		"/api/repository?path=no/such":                http.StatusNotFound,
		"/nope":                                       http.StatusNotFound,
		"/static/nope.css":                            http.StatusNotFound,
	} {
		code, body := f.get(path)
		require.Equal(t, want, code, "%s: %s", path, body)
		requireEscaped(t, body)
		if strings.HasPrefix(path, "/api/") {
			require.Contains(t, body, `"error":`)
		}
	}
	_, body := f.get("/imports?state=%3Cscript%3Ealert(1)%3C/script%3E")
	requireEscaped(t, body)

	before := f.snapshot()
	tok := f.token("/")
	for name, c := range map[string]struct {
		form url.Values
		want int
	}{
		"forged token":       {action("AAAA"+tok[4:], dashboard.PauseMigration, "backfill"), http.StatusForbidden},
		"no token":           {url.Values{"action": {"pause_migration"}, "target": {"backfill"}}, http.StatusForbidden},
		"token twice":        {url.Values{"csrf": {tok, tok}, "action": {"pause_migration"}, "target": {"backfill"}}, http.StatusForbidden},
		"unknown action":     {action(tok, "drop_table", "backfill"), http.StatusBadRequest},
		"no target":          {url.Values{"csrf": {tok}, "action": {"pause_migration"}}, http.StatusBadRequest},
		"unknown migration":  {action(tok, dashboard.PauseMigration, "nope"), http.StatusNotFound},
		"finished migration": {action(tok, dashboard.PauseMigration, "done"), http.StatusConflict},
		"unknown repository": {action(tok, dashboard.CancelImport, "no/such"), http.StatusNotFound},
		"bad path":           {action(tok, dashboard.CancelImport, "a/../b"), http.StatusBadRequest},
		"retry not skipped":  {action(tok, dashboard.RetryImport, "alpha/repo-06"), http.StatusConflict},
		"cancel done":        {action(tok, dashboard.CancelImport, "beta/repo-01"), http.StatusConflict},
		"unknown lease":      {action(tok, dashboard.BreakLease, "other"), http.StatusNotFound},
		"long target":        {action(tok, dashboard.PauseMigration, strings.Repeat("m", 300)), http.StatusBadRequest},
		"big form":           {url.Values{"csrf": {tok}, "pad": {strings.Repeat("x", 9000)}}, http.StatusRequestEntityTooLarge},
	} {
		code, _, body := f.post(c.form)
		require.Equal(t, c.want, code, "%s: %s", name, body)
		requireEscaped(t, body)
	}
	// A POST that another site makes the browser send is refused before
	// the token is even looked at.
	require.Equal(t, http.StatusForbidden, f.postWith(action(tok, dashboard.PauseMigration, "backfill"), "Sec-Fetch-Site", "cross-site"))
	// A token is bound to its cookie: another browser's is refused.
	other := newFixture(t, o)
	code, _, _ := other.post(action(tok, dashboard.PauseMigration, "backfill"))
	require.Equal(t, http.StatusForbidden, code)
	// The host's Authorize refuses: 403, nothing done.
	f.allow.Store(false)
	code, _, body = f.post(action(tok, dashboard.PauseMigration, "backfill"))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "may not pause_migration")
	requireEscaped(t, body)
	require.Equal(t, before, f.snapshot(), "refused actions changed something")
	resp, err := f.client.Get(f.url("/actions"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "actions are POSTs")
}

// snapshot is every migration's status and every repository's state.
func (f *fixture) snapshot() map[string]string {
	out := map[string]string{}
	for _, n := range []string{"backfill", "team/later", "done"} {
		out["m:"+n] = string(f.migrationStatus(n))
	}
	c, err := f.store.Count(context.Background())
	require.NoError(f.t, err)
	for s, n := range c.States {
		out["s:"+string(s)] = itoa(int64(n))
	}
	out["lease"] = map[bool]string{true: "held", false: "free"}[f.held()]
	return out
}

// Read-only by default: no buttons, no cookie, every POST refused.
func TestReadOnlyByDefault(t *testing.T) {
	f := newFixture(t, fixtureOptions{readOnly: true})
	resp, err := f.client.Get(f.url("/migrations/team/later"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, resp.Cookies(), "a read-only dashboard sets no cookie")
	_, body := f.get("/migrations/team/later")
	require.NotContains(t, body, "<form method=\"post\"")
	require.Contains(t, body, "read-only")
	code, _, body := f.post(action("x", dashboard.ResumeMigration, "team/later"))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "read-only")
	require.Equal(t, bbm.StatusPaused, f.migrationStatus("team/later"))
}

// New refuses configs it cannot serve.
func TestNewRefusesBadConfig(t *testing.T) {
	locker := leasetest.NewLocker(leasetest.Options{})
	for name, cfg := range map[string]dashboard.Config{
		"nothing to show":   {},
		"relative prefix":   {Prefix: "ferry", Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}},
		"trailing slash":    {Prefix: "/ferry/", Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}},
		"prefix with query": {Prefix: "/ferry?x", Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}},
		"root prefix":       {Prefix: "/", Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}},
		"no locker":         {Leases: []dashboard.LeaseKey{{Key: "k"}}},
		"bad key":           {Leases: []dashboard.LeaseKey{{Key: "", Locker: locker}}},
		"not an inspector":  {Leases: []dashboard.LeaseKey{{Key: "k", Locker: plainLocker{}}}},
		"short csrf key":    {Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}, CSRFKey: []byte("short")},
		"page size":         {Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}, PageSize: 1000},
		"imports alone":     {Leases: []dashboard.LeaseKey{{Key: "k", Locker: locker}}, Imports: noImports{}},
	} {
		_, err := dashboard.New(cfg)
		require.ErrorIs(t, err, dashboard.ErrConfig, name)
	}
}

type noImports struct{ dashboard.ImportAdmin }

// A store that fails is shown in its section; the others still show.
func TestFailingSourceIsShown(t *testing.T) {
	h, err := dashboard.New(dashboard.Config{Repositories: failingRepos{}, Migrations: failingMigrations{},
		Logger: slog.New(slog.DiscardHandler),
		Leases: []dashboard.LeaseKey{{Key: "k", Locker: leasetest.NewLocker(leasetest.Options{})}}})
	require.NoError(t, err)
	rec := httptestGet(h, "/")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "Cannot read the repositories: connection refused")
	require.Contains(t, rec.Body.String(), "Cannot read the migrations: connection refused")
	require.Contains(t, rec.Body.String(), `data-lease="k"`)
	rec = httptestGet(h, "/imports")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

type failingRepos struct{ dashboard.Repositories }

func (failingRepos) Count(context.Context) (enqueuer.Counts, error) {
	return enqueuer.Counts{}, errConnRefused
}

type failingMigrations struct{ dashboard.Migrations }

func (failingMigrations) StatusAll(context.Context) ([]*bbm.Progress, error) {
	return nil, errConnRefused
}

// The forecast's card and table show the Enqueuer's figures. No page
// waits for a forecast: the first shows that one is being made, the next
// shows it; one serves the pages for ForecastMaxAge, then a page shows
// the kept one while a new one is made. A failure is said in the card
// until a forecast succeeds, and the rest of the page shows.
func TestForecastShown(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var (
		mu    sync.Mutex
		now   = at
		asked []enqueuer.ForecastOptions
		fail  bool
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	set := func(advance time.Duration, failing bool) {
		mu.Lock()
		defer mu.Unlock()
		now, fail = now.Add(advance), failing
	}
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(asked)
	}
	forecaster := forecastFunc(func(_ context.Context, opts enqueuer.ForecastOptions) (enqueuer.Forecast, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, opts)
		if fail {
			return enqueuer.Forecast{}, errConnRefused
		}
		return enqueuer.Forecast{At: opts.Now, Capacity: opts.Capacity, Known: true, Remaining: 90 * time.Minute, ETA: opts.Now.Add(90 * time.Minute), Progressed: 2,
			Counts: enqueuer.Counts{States: map[enqueuer.State]int{enqueuer.StateDefault: 40, enqueuer.StateImporting: 2}, Deferred: 5},
			Buckets: []enqueuer.BucketForecast{
				{MinTags: 3, MaxTags: 5, Finished: 7, MeanTags: 4.25, MeanDuration: 90 * time.Second, InProgress: 2, Waiting: 30},
				{MinTags: 100_001, MaxTags: math.MaxInt, Waiting: 5},
			}}, nil
	})
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	cfg := dashboard.Config{Repositories: store, Capacity: func(context.Context) int { return 25 },
		Clock: clock, Logger: slog.New(slog.DiscardHandler), Forecast: forecaster}
	h, err := dashboard.New(cfg)
	require.NoError(t, err)
	overview := func() dashboard.Forecast {
		t.Helper()
		var ov dashboard.Overview
		rec := httptestGet(h, "/api/overview")
		require.Equal(t, http.StatusOK, rec.Code)
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ov))
		return *ov.Imports.Forecast
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, 10*time.Second, time.Millisecond, what)
	}

	rec := httptestGet(h, "/")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `<span class="big" id="forecast">…</span><span class="sub">being made`)
	eventually("the first forecast", func() bool { return overview().Known })
	require.Equal(t, []enqueuer.ForecastOptions{{Now: at, Capacity: 25}}, asked)
	rec = httptestGet(h, "/")
	body := rec.Body.String()
	require.Contains(t, body, `<span class="big" id="forecast">1h30m</span>`)
	require.Contains(t, body, "for 37 repositories at a capacity of 25; done about 2026-12-03 13:30:00 UTC")
	require.Contains(t, body, `<span class="big" id="total">0</span>`, "the counts are the store's, not a kept forecast's")
	rec = httptestGet(h, "/imports")
	require.Equal(t, http.StatusOK, rec.Code)
	body = rec.Body.String()
	require.Contains(t, body, `<td class="n">3–5</td><td class="n">7</td><td class="n">4</td><td class="n">1m30s</td><td class="n">2</td><td class="n">30</td>`)
	require.Contains(t, body, `<td class="n">100001&#43;</td><td class="n">0</td><td class="n">—</td><td class="n">—</td>`)
	require.Contains(t, body, "by tag count, and the registry's progress of 2 running imports.")
	require.NotContains(t, body, `id="forecast-unknown"`)
	fc := overview()
	require.Equal(t, 1, calls(), "one forecast serves the pages for ForecastMaxAge")
	require.Equal(t, at, fc.At)
	require.Equal(t, 90*time.Minute, fc.Left.Duration())
	require.Equal(t, at.Add(90*time.Minute), *fc.ETA)
	require.Nil(t, fc.Buckets[1].MaxTags, "the last bucket has no bound")
	require.Equal(t, 5, *fc.Buckets[0].MaxTags)
	require.False(t, fc.Buckets[1].MeanDuration.Known())

	// Past ForecastMaxAge the kept one is shown while a new one is made.
	set(dashboard.DefaultForecastMaxAge, false)
	require.Equal(t, at, overview().At)
	eventually("a new forecast", func() bool { return overview().At.Equal(at.Add(dashboard.DefaultForecastMaxAge)) })
	require.Equal(t, 2, calls())

	// A new one that fails: the card says so (the page still shows)
	// until one succeeds; each page tries again.
	set(dashboard.DefaultForecastMaxAge, true)
	require.True(t, overview().Known, "the kept one, while the new one is made")
	eventually("the failure", func() bool { return overview().Error != "" })
	rec = httptestGet(h, "/")
	require.Contains(t, rec.Body.String(), "Cannot forecast: connection refused")
	require.Contains(t, rec.Body.String(), `id="total"`)
	set(0, false)
	eventually("a forecast again", func() bool { f := overview(); return f.Known && f.Error == "" })

	// With a negative ForecastMaxAge every page makes one and waits; its
	// counts are the page's (one count, not two).
	cfg.ForecastMaxAge = -1
	h, err = dashboard.New(cfg)
	require.NoError(t, err)
	n := calls()
	for i := range 2 {
		rec = httptestGet(h, "/")
		require.Contains(t, rec.Body.String(), `<span class="big" id="forecast">1h30m</span>`)
		require.Contains(t, rec.Body.String(), `<span class="big" id="total">42</span>`)
		require.Equal(t, n+i+1, calls())
	}
}

// A forecast that is not known yet says why on the imports page and in
// the API.
func TestForecastUnknownShown(t *testing.T) {
	why := "no import has finished both phases yet (8 in progress, the longest for 40s; 0 pre-imports finished)"
	forecaster := forecastFunc(func(_ context.Context, opts enqueuer.ForecastOptions) (enqueuer.Forecast, error) {
		return enqueuer.Forecast{At: opts.Now, Capacity: opts.Capacity, Unknown: why,
			Counts:  enqueuer.Counts{States: map[enqueuer.State]int{enqueuer.StatePreImporting: 8}},
			Buckets: []enqueuer.BucketForecast{{MinTags: 501, MaxTags: 1000, InProgress: 8}}}, nil
	})
	h, err := dashboard.New(dashboard.Config{Repositories: enqueuertest.NewStore(enqueuertest.StoreOptions{}),
		Capacity: func(context.Context) int { return 8 }, Logger: slog.New(slog.DiscardHandler), Forecast: forecaster, ForecastMaxAge: -1})
	require.NoError(t, err)
	var ov dashboard.Overview
	rec := httptestGet(h, "/api/overview")
	require.Equal(t, http.StatusOK, rec.Code)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ov))
	require.False(t, ov.Imports.Forecast.Known)
	require.Equal(t, why, ov.Imports.Forecast.Unknown)
	rec = httptestGet(h, "/imports")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `<p class="sub" id="forecast-unknown">`+why+`</p>`)
}
