package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/internal/browsertest"
	"github.com/ferryhq/ferry/internal/syncbuf"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// screenshotEnv names a file the browser test also writes its screenshot
// to (docs/dashboard.png is made that way).
const screenshotEnv = "FERRY_DASHBOARD_SCREENSHOT"

// The dashboard that registryhost mounts, driven by a real headless
// Chromium while the host imports and backfills on real Postgres: the
// overview shows the database's counts; a button clicked without the
// admin login is refused and changes nothing; after logging in, pause,
// resume and retry change the migrations' states and cancel and retry
// change a repository's; the auto-refresh reloads the page; no page logs
// a console error or an exception; a screenshot is written.
func TestDashboardInABrowser(t *testing.T) {
	url := storagetest.URL(t)
	db := openDB(t, url)
	// Imports are slow enough to watch (1s per pass, capacity 3 of 48
	// repositories: about half a minute of imports, so that some still run
	// when the test cancels one after a dozen page loads on a slow
	// machine), and the backfill has hundreds of short jobs.
	cfg := config{DatabaseURL: url, Dir: t.TempDir(), Repositories: 48, Capacity: 3, BackfillRows: 100_000, BatchSize: 200,
		ImportDelay: time.Second, BatchDelay: 600 * time.Millisecond, BackfillInterval: 50 * time.Millisecond,
		EnqueueEvery: 200 * time.Millisecond, StatusEvery: -1, ShutdownTimeout: 5 * time.Second,
		AdminToken: "test-admin-token", DashboardRefresh: time.Second, DashboardForecastMaxAge: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	base := waitForAddress(t, out)
	dash := base + dashboardPrefix

	browser := browsertest.New(t, browsertest.Options{Width: 1280, Height: 1000})
	console := collectConsole(t, browser)
	// Every browser step runs under one deadline: a page that never shows
	// what a step waits for fails the test instead of hanging it.
	browser, stop := context.WithTimeout(browser, 4*time.Minute)
	defer stop()
	nav := func(path string) {
		t.Helper()
		require.NoError(t, chromedp.Do(browser, chromedp.Navigate(dash+path), chromedp.WaitReady(chromedp.CSS("main"))))
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}
	// submit clicks a form's button, waits for the next page (not the
	// current one, which may show the same element) to show a notice or
	// an error, and returns the error's text ("" after a notice).
	submit := func(sel string) string {
		t.Helper()
		require.NoError(t, chromedp.Do(browser, chromedp.Evaluate[chromedp.Void](`window.__ferryOld = 1`),
			chromedp.Click(chromedp.CSS(sel))), sel)
		waitFor(t, "the page after "+sel, func() bool {
			old, err := chromedp.Run(browser, chromedp.Evaluate[*int](`window.__ferryOld === undefined ? null : 1`))
			return err == nil && old == nil
		})
		require.NoError(t, chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS("#notice, #error-message"))), sel)
		msg, err := chromedp.Run(browser, chromedp.Evaluate[string](
			`(document.querySelector("#error-message") || {textContent: ""}).textContent`))
		require.NoError(t, err)
		return strings.TrimSpace(msg)
	}
	// click submits and wants the notice of a done action.
	click := func(sel string) {
		t.Helper()
		require.Empty(t, submit(sel), "%s was refused", sel)
	}

	// The page reloads itself while the box is ticked; unticked, it stays.
	nav("/")
	require.NoError(t, chromedp.Do(browser, chromedp.Evaluate[chromedp.Void](`window.__ferryMarker = 1`)))
	waitFor(t, "the overview to reload itself", func() bool {
		v, err := chromedp.Run(browser, chromedp.Evaluate[*int](`window.__ferryMarker === undefined ? null : 1`))
		return err == nil && v == nil
	})
	require.NoError(t, chromedp.Do(browser, chromedp.WaitReady(chromedp.CSS("#autorefresh")), chromedp.Click(chromedp.CSS("#autorefresh"))))

	// While imports run, the overview's counts are the database's: a page
	// read between two equal readings of the database must match them.
	matched := 0
	waitFor(t, "the overview to match the database twice while imports run", func() bool {
		before := dbCounts(t, db)
		nav("/")
		page, err := chromedp.Run(browser, chromedp.Evaluate[map[string]string](
			`Object.fromEntries([...document.querySelectorAll("#imports td[data-state]")].map(td => [td.dataset.state, td.textContent.trim()]))`))
		require.NoError(t, err)
		inProgress := text("#in-progress")
		after := dbCounts(t, db)
		if !maps.Equal(before, after) {
			return false // something moved meanwhile: try again
		}
		want := map[string]string{}
		running := 0
		for _, st := range enqueuer.States {
			want[string(st)] = strconv.Itoa(before[string(st)])
			if st.InProgress() {
				running += before[string(st)]
			}
		}
		require.Equal(t, want, page, "the overview's counts are not the database's")
		require.Equal(t, strconv.Itoa(running), inProgress)
		if running > 0 && before[string(enqueuer.StateDefault)] > 0 {
			matched++
		}
		return matched >= 2
	})
	// Once an import has finished, the Enqueuer's forecast has a figure.
	// (the first page starts it in the background and shows "…").
	waitFor(t, "the overview to show a forecast", func() bool {
		nav("/")
		return regexp.MustCompile(`^[0-9]`).MatchString(text("#forecast"))
	})
	require.NoError(t, writeScreenshot(t, browser))

	// A failed migration of a Work registryhost does not have (it leaves
	// it alone), for the retry button.
	failing := registerFailingMigration(t, db)

	// Without the admin login, an action is refused and changes nothing.
	backfill := "/migrations/" + backfillMigration
	nav(backfill)
	status := migrationStatus(t, db, backfillMigration)
	require.Contains(t, []bbm.Status{bbm.StatusActive, bbm.StatusRunning}, status)
	require.Contains(t, submit(`button[data-action="pause_migration"]`), "log in first")
	require.Contains(t, text("h1"), "403")
	require.Equal(t, status, migrationStatus(t, db, backfillMigration), "a refused pause changed the migration")

	// Logged in, pause, resume and retry change the migrations' states.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(base+"/ferry-login?token="+cfg.AdminToken), chromedp.WaitReady(chromedp.CSS("main"))))
	nav(backfill)
	click(`button[data-action="pause_migration"]`)
	require.Equal(t, bbm.StatusPaused, migrationStatus(t, db, backfillMigration))
	require.Contains(t, text("#notice"), "Paused")
	click(`button[data-action="resume_migration"]`)
	require.Contains(t, []bbm.Status{bbm.StatusActive, bbm.StatusRunning}, migrationStatus(t, db, backfillMigration))
	nav("/migrations/" + failing)
	require.Contains(t, text("#migration-error"), "always fails")
	click(`button[data-action="retry_migration"]`)
	require.Equal(t, bbm.StatusRunning, migrationStatus(t, db, failing))

	// Cancel an import in progress from the imports page, then retry it
	// from its own page: the latest started (the list is longest first).
	// An import may finish between the page and the click (409: it is
	// done): then another one is cancelled.
	var path string
	for attempt := 1; ; attempt++ {
		waitFor(t, "an import in progress on the imports page", func() bool {
			nav("/imports")
			p, err := chromedp.Run(browser, chromedp.Evaluate[string](
				`([...document.querySelectorAll('#in-progress button[data-action="cancel_import"]')].pop() || {}).dataset?.target || ""`))
			require.NoError(t, err)
			path = p
			return p != ""
		})
		msg := submit(fmt.Sprintf(`#in-progress button[data-action="cancel_import"][data-target=%q]`, path))
		if msg == "" {
			break
		}
		require.Contains(t, msg, "cannot cancel_import", "only a race with the import's end may refuse the cancel")
		require.Less(t, attempt, 5, "every cancel crossed an import's end: %s", msg)
	}
	require.Equal(t, path, text("#repository-path"))
	waitFor(t, "the cancelled repository to be skipped", func() bool {
		return repoState(t, db, path) == enqueuer.StateImportSkipped
	})
	require.Equal(t, enqueuer.SkipForceCanceled, skipReason(t, db, path))
	nav("/repository?path=" + path)
	click(`button[data-action="retry_import"]`)
	// Reset to default; the enqueuer may take it up (or skip it for
	// another reason, the registry having finished it) at once.
	require.False(t, repoState(t, db, path) == enqueuer.StateImportSkipped && skipReason(t, db, path) == enqueuer.SkipForceCanceled,
		"the retry did not reset the cancelled repository")

	// The other pages load as well, and nothing logged an error.
	nav("/imports?state=import_done")
	nav("/migrations/" + backfillMigration + "?status=finished&limit=5")
	console.requireClean(t)
}

// dbCounts reads the repositories per state straight from the table.
func dbCounts(t *testing.T, db *storage.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, st := range enqueuer.States {
		out[string(st)] = 0
	}
	rows, err := db.Query(context.Background(), `SELECT state, count(*) FROM ferry_enqueuer_repositories GROUP BY state`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		require.NoError(t, rows.Scan(&s, &n))
		out[s] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func migrationStatus(t *testing.T, db *storage.DB, name string) bbm.Status {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow(context.Background(), `SELECT status FROM ferry_bbm_migrations WHERE name = $1`, name).Scan(&s))
	return bbm.Status(s)
}

func skipReason(t *testing.T, db *storage.DB, path string) string {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow(context.Background(), `SELECT skip_reason FROM ferry_enqueuer_repositories WHERE path = $1`, path).Scan(&s))
	return s
}

func repoState(t *testing.T, db *storage.DB, path string) enqueuer.State {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow(context.Background(), `SELECT state FROM ferry_enqueuer_repositories WHERE path = $1`, path).Scan(&s))
	return enqueuer.State(s)
}

// registerFailingMigration registers, on registryhost's table, a
// migration whose Work always fails and runs it (one attempt per job) to
// failure, from a worker of the test's own.
func registerFailingMigration(t *testing.T, db *storage.DB) string {
	t.Helper()
	const name = "browser_test_failing"
	w := bbm.NewSyncWorker(db, bbm.Options{MaxJobAttempts: 1, RetryBackoff: time.Millisecond, Interval: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, w.Register(bbm.WorkFunc("always_fails", func(context.Context, storage.Querier, bbm.Batch) error {
		return errors.New("always fails, by design")
	})))
	_, err := w.Admin().Register(context.Background(), bbm.Definition{Name: name, Table: backfillTable, Column: "id",
		Work: "always_fails", BatchSize: 100, From: bbm.IntKey(1), To: bbm.IntKey(100), OnFailure: bbm.FailFast})
	require.NoError(t, err)
	require.ErrorIs(t, w.Run(context.Background()), bbm.ErrMigrationFailed)
	return name
}

// console keeps what the browser's console said.
type console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func collectConsole(t *testing.T, browser context.Context) *console {
	c := &console{}
	messages := chromedp.Console(browser)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

// refusedAction is the browser's log entry for the 403 answer to the
// refused action, which the test asks for, or the 409 to a cancel that
// crossed its import's end, which the test tries again.
var refusedAction = regexp.MustCompile(`status of (403|409)`)

// requireClean fails t on any error or exception the pages logged, but
// those of refused actions.
func (c *console) requireClean(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		if m.Source == "network" && refusedAction.MatchString(m.Text) && strings.HasSuffix(m.URL, dashboardPrefix+"/actions") {
			continue
		}
		t.Errorf("console %s (%s %s): %s", m.Type, m.Source, m.URL, m.Text)
	}
}

// writeScreenshot writes a PNG of the whole page to the test's artifact
// directory, and to $FERRY_DASHBOARD_SCREENSHOT when set.
func writeScreenshot(t *testing.T, browser context.Context) error {
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	p := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		return err
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
	if p := os.Getenv(screenshotEnv); p != "" {
		return os.WriteFile(p, png, 0o644)
	}
	return nil
}
