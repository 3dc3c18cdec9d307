package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/fileblob"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/internal/syncbuf"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// childEnv makes the test binary run main instead of the tests, so that the
// end-to-end test can run the host as a child process and signal it.
const childEnv = "FERRY_REGISTRYHOST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	storagetest.Main(m)
}

// A host that is busy importing and backfilling gets SIGTERM, shuts down
// gracefully (nothing half-done, the lease released), is started again on
// the same database and directories, and finishes: every repository was
// imported exactly once and every row backfilled exactly once.
func TestSignalAndRestartCompleteEverythingOnce(t *testing.T) {
	url := storagetest.URL(t)
	dir := t.TempDir()
	cfg := config{Repositories: 8, Capacity: 3, BackfillRows: 6000, BatchSize: 500}.withDefaults()
	args := []string{"-database-url", url, "-dir", dir, "-repos", "8", "-capacity", "3", "-rows", "6000", "-batch", "500",
		"-import-delay", "300ms", "-batch-delay", "100ms", "-backfill-interval", "50ms", "-enqueue-every", "200ms",
		"-status-every", "-1s"}
	ctx := context.Background()
	db := openDB(t, url)
	t0 := time.Now()

	first := startChild(t, args...)
	waitFor(t, "some imports and backfill jobs done", func() bool {
		s := peek(t, db)
		return s.repos[enqueuer.StateImportDone] >= 2 && s.backfillJobs >= 2
	})
	at := peek(t, db)
	t.Logf("SIGTERM with %v, backfill jobs finished %d", at.repos, at.backfillJobs)
	out := first.stop(t, syscall.SIGTERM)
	require.Contains(t, out, "shutting down: signal received")
	require.Contains(t, out, "leases: released")

	// Nothing is half-done after a graceful stop.
	after := peek(t, db)
	require.Zero(t, after.repos[enqueuer.StatePreImporting], "pre-imports left running: %v", after.repos)
	require.Zero(t, after.repos[enqueuer.StateImporting], "imports left running: %v", after.repos)
	require.Zero(t, after.passesRunning, "registry imports left running")
	require.Zero(t, after.unnotified, "outcomes not delivered")
	require.Zero(t, after.backfillRunningJobs, "backfill jobs left running")
	requireLeaseFree(t, db)
	if after.repos[enqueuer.StateImportDone] == cfg.Repositories && after.backfillStatus == bbm.StatusFinished {
		t.Log("everything finished before SIGTERM took effect; the restart has nothing left to do")
	}

	second := startChild(t, append(args, "-exit-when-done")...)
	out = second.wait(t)
	require.Contains(t, out, "shutting down: everything is done")
	requireLeaseFree(t, db)
	verifyExactlyOnce(t, ctx, db, dir, cfg, false)
	t.Logf("end to end with a restart: %s", time.Since(t0).Round(time.Millisecond))
}

// When running jobs do not finish within -shutdown-timeout they are
// cancelled: nothing is half-written (the interrupted imports are recorded
// as failed and notified, so the enqueuer aborts them; the backfill job's
// transaction rolls back), and the next run retries them, still without a
// repository imported twice or a row changed twice.
func TestHardStopResumesWithoutDuplicates(t *testing.T) {
	url := storagetest.URL(t)
	dir := t.TempDir()
	cfg := config{Repositories: 4, Capacity: 2, BackfillRows: 2000, BatchSize: 1000}.withDefaults()
	args := []string{"-database-url", url, "-dir", dir, "-repos", "4", "-capacity", "2", "-rows", "2000", "-batch", "1000",
		"-backfill-interval", "50ms", "-enqueue-every", "200ms", "-status-every", "-1s"}
	db := openDB(t, url)

	first := startChild(t, append(args, "-import-delay", "1m", "-batch-delay", "1m", "-shutdown-timeout", "300ms")...)
	waitFor(t, "passes and a backfill job running", func() bool {
		s := peek(t, db)
		return s.passesRunning == cfg.Capacity && s.backfillRunningJobs == 1
	})
	out := first.stop(t, syscall.SIGTERM)
	require.Contains(t, out, "leases: released")
	after := peek(t, db)
	require.Zero(t, after.passesRunning, "interrupted imports are recorded as failed")
	require.Zero(t, after.unnotified, "and their failure was delivered")
	require.Equal(t, cfg.Capacity, after.repos[enqueuer.StateImportAborted], "the enqueuer aborted them: %v", after.repos)
	require.Zero(t, after.backfillRunningJobs, "the abandoned job is recorded as cancelled")
	var touched int
	require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM registryhost_blobs WHERE touched > 0`).Scan(&touched))
	require.Zero(t, touched, "the cancelled batch rolled back")
	requireLeaseFree(t, db)

	second := startChild(t, append(args, "-exit-when-done")...)
	second.wait(t)
	verifyExactlyOnce(t, context.Background(), db, dir, cfg, true)
}

// run in process: it completes everything, shuts down when its context
// ends, and leaves no goroutine behind; run again, it does nothing twice.
func TestRunCompletesAndLeavesNoGoroutines(t *testing.T) {
	url := storagetest.URL(t)
	dir := t.TempDir()
	db := openDB(t, url)
	cfg := config{DatabaseURL: url, Dir: dir, Repositories: 5, Capacity: 2, BackfillRows: 3000, BatchSize: 1000,
		BackfillInterval: 50 * time.Millisecond, EnqueueEvery: 200 * time.Millisecond, StatusEvery: -1, Secret: "s3cret"}
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out) }()
	base := waitForAddress(t, out)

	// The endpoint is the enqueuer's Handler: it wants the secret.
	for _, c := range []struct {
		auth string
		code int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusForbidden}} {
		req, err := http.NewRequest(http.MethodPut, base+"/internal/registry/repositories/a/b/migration/status", strings.NewReader(`{"status":"import_complete"}`))
		require.NoError(t, err)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, c.code, resp.StatusCode)
	}
	resp, err := http.Get(base + "/status")
	require.NoError(t, err)
	var status map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&status))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, status, "forecast_known", "the status has the enqueuer's forecast")
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	metricsText, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(metricsText), `ferry_enqueuer_repositories{state="default"}`)
	http.DefaultClient.CloseIdleConnections()

	waitFor(t, "everything done", func() bool {
		s := peek(t, db)
		return s.repos[enqueuer.StateImportDone] == cfg.Repositories && s.backfillStatus == bbm.StatusFinished && s.unnotified == 0
	})
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "leases: released")
	requireNoLeakedGoroutines(t, before)

	// Run again on the same state: it finds everything done and stops.
	cfg.ExitWhenDone = true
	out = &syncbuf.Buffer{}
	require.NoError(t, run(context.Background(), cfg, out))
	require.Contains(t, out.String(), "generated by an earlier run")
	require.Contains(t, out.String(), "(0 new)")
	requireNoLeakedGoroutines(t, before)
	verifyExactlyOnce(t, context.Background(), db, dir, cfg.withDefaults(), false)
}

func TestBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-repos", "0"}, {"-capacity", "-1"}, {"-listen", "nonsense"}, {"-batch-delay", "-1s"}, {"extra"},
	} {
		_, err := parseFlags(args, &bytes.Buffer{})
		require.ErrorIs(t, err, errConfig, "%v", args)
	}

	_, err := newQueues([]byte(`[["urgency=high", "urgent"], ["urgency=", "broken"]]`), "rules.yaml")
	require.ErrorContains(t, err, "rules.yaml")
	require.ErrorContains(t, err, "rule 1")

	rules := filepath.Join(t.TempDir(), "rules.json")
	require.NoError(t, os.WriteFile(rules, []byte(`[["feature_category=container_registry", "registry"], ["*", "default"]]`), 0o644))
	data, from, err := loadRules(rules)
	require.NoError(t, err)
	q, err := newQueues(data, from)
	require.NoError(t, err)
	require.Equal(t, "registry", q.queue(kindImport))
	require.Equal(t, "registry", q.queue(kindNotification))
	require.Equal(t, "default", q.queue(kindBackfill))

	_, _, err = loadRules(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// verifyExactlyOnce checks the end state: every repository went through
// the four transitions of a clean migration and nothing else but claims
// put back (or, when
// interrupted, was aborted and then retried once or reconciled), the registry imported each
// repository once (one import_complete; two passes, or four when retried)
// and delivered every outcome, the destination holds exactly the source's
// tagged content with every blob verified, and every row was backfilled
// once by jobs that each ran once and cover the key range without
// overlap.
func verifyExactlyOnce(t *testing.T, ctx context.Context, db *storage.DB, dir string, cfg config, resumed bool) {
	t.Helper()
	store, err := enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{})
	require.NoError(t, err)
	repos, err := store.List(storage.UsePrimary(ctx), enqueuer.ListOptions{State: enqueuer.StateImportDone, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, repos, cfg.Repositories, "repositories imported")
	clean := cleanMigrationVersion(t)
	for _, r := range repos {
		if resumed && (r.RetryCount > 0 || r.AbortReason != "") {
			// Interrupted and aborted: retried once, or reconciled with
			// the registry's status before the retry (a pass that had
			// finished or still ran is taken as it is, without a retry).
			require.LessOrEqual(t, r.RetryCount, 1, "%s: %+v", r.Path, r)
			continue
		}
		// A start the registry answered 425 (its previous outcome still
		// on its way) is claimed and put back: two versions, no state
		// change; the registry's runs below prove no pass ran twice.
		require.GreaterOrEqual(t, r.Version, clean, r.Path)
		require.Zero(t, (r.Version-clean)%2, "%s: a state transition happened more than once (or was reverted): %+v", r.Path, r)
		require.Zero(t, r.RetryCount, r.Path)
		require.Empty(t, r.AbortReason, r.Path)
	}

	rows, err := db.Query(ctx, `SELECT i.path, i.status, i.run,
			count(*) FILTER (WHERE n.status = 'import_complete'), count(*) FILTER (WHERE n.state NOT IN ('delivered', 'superseded'))
		FROM ferry_importserver_imports i JOIN ferry_importserver_notifications n USING (path)
		GROUP BY i.path, i.status, i.run ORDER BY i.path`)
	require.NoError(t, err)
	defer rows.Close()
	imported := 0
	for rows.Next() {
		var path, status string
		var run int64
		var completes, undelivered int
		require.NoError(t, rows.Scan(&path, &status, &run, &completes, &undelivered))
		require.Equal(t, string(importserver.StatusImportComplete), status, path)
		require.Equal(t, 1, completes, "%s imported once", path)
		require.Zero(t, undelivered, "%s: every outcome delivered", path)
		if resumed {
			// Interrupted during its pre-import (3 runs) or final import (4).
			require.Contains(t, []int64{2, 3, 4}, run, "%s: pre and final, retried at most once", path)
		} else {
			require.Equal(t, int64(2), run, "%s: one pre-import, one final import", path)
		}
		imported++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, cfg.Repositories, imported)

	gen, err := transfertest.Generate(ctx, transfertest.NewMemBucket(), sourceSpec(cfg))
	require.NoError(t, err)
	dstBlob, err := fileblob.OpenBucket(filepath.Join(dir, "dst"), &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	require.NoError(t, err)
	defer dstBlob.Close()
	dst := gocloudblob.New(dstBlob)
	layout, err := transfer.NewLayout("")
	require.NoError(t, err)
	got, err := transfertest.ReadLayoutState(ctx, dst, layout)
	require.NoError(t, err)
	require.Empty(t, transfertest.Diff(gen.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport}), got))
	n, err := transfertest.CheckBlobs(ctx, dst, layout)
	require.NoError(t, err)
	require.Positive(t, n)

	bstore := bbm.NewPostgresStore(db, bbm.PostgresStoreOptions{})
	m, err := bstore.MigrationByName(ctx, backfillMigration)
	require.NoError(t, err)
	require.Equal(t, bbm.StatusFinished, m.Status)
	jobs, err := bstore.Jobs(ctx, m.ID)
	require.NoError(t, err)
	next := int64(1)
	for _, j := range jobs {
		require.Equal(t, bbm.JobFinished, j.Status)
		require.Equal(t, 1, j.Attempts, "job %d [%s, %s] ran more than once", j.ID, j.Start, j.End)
		start, _ := j.Start.Int()
		end, _ := j.End.Int()
		require.Equal(t, next, start, "jobs must cover the keys without gap or overlap")
		next = end + 1
	}
	require.Equal(t, int64(cfg.BackfillRows+1), next)
	var total, wrong int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE touched <> 1 OR size_bucket IS NULL) FROM registryhost_blobs`).Scan(&total, &wrong))
	require.Equal(t, cfg.BackfillRows, total)
	require.Zero(t, wrong, "rows not backfilled exactly once")
}

// cleanMigrationVersion is a repository's Version after the four
// transitions of a migration that went through without a hitch.
func cleanMigrationVersion(t *testing.T) int64 {
	ctx := context.Background()
	s := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	r, err := s.Add(ctx, enqueuer.NewRepository{Path: "group/image"})
	require.NoError(t, err)
	for _, ev := range []enqueuer.Event{enqueuer.EventStartPreImport, enqueuer.EventFinishPreImport, enqueuer.EventStartImport, enqueuer.EventFinishImport} {
		r, err = s.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: ev})
		require.NoError(t, err)
	}
	return r.Version
}

// requireLeaseFree checks that nobody holds the enqueuer lease: it can be
// taken at once (the host's ttl is 30s, so a lease left behind would still
// be held).
func requireLeaseFree(t *testing.T, db *storage.DB) {
	t.Helper()
	ctx := context.Background()
	l, err := pglease.New(db, pglease.Options{Holder: "test"}).Acquire(ctx, enqueuer.DefaultLeaseKey, time.Second)
	require.NoError(t, err, "the enqueuer lease was not released")
	require.NoError(t, l.Release(ctx))
}

func requireNoLeakedGoroutines(t *testing.T, before int) {
	t.Helper()
	var now int
	for range 100 {
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	var dump bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
	t.Fatalf("%d goroutines after run returned, %d before:\n%s", now, before, dump.String())
}

// state is what the test reads of the host's progress.
type state struct {
	repos               map[enqueuer.State]int
	passesRunning       int
	unnotified          int
	backfillStatus      bbm.Status
	backfillJobs        int
	backfillRunningJobs int
}

func peek(t *testing.T, db *storage.DB) state {
	t.Helper()
	ctx := storage.UsePrimary(context.Background())
	s := state{repos: map[enqueuer.State]int{}}
	store, err := enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{})
	require.NoError(t, err)
	for _, st := range enqueuer.States {
		rs, err := store.List(ctx, enqueuer.ListOptions{State: st, Limit: 1000})
		require.NoError(t, err)
		if len(rs) > 0 {
			s.repos[st] = len(rs)
		}
	}
	require.NoError(t, db.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM ferry_importserver_imports WHERE status IN ('pre_import_in_progress', 'import_in_progress')),
			(SELECT count(*) FROM ferry_importserver_notifications WHERE state = 'pending')`).Scan(&s.passesRunning, &s.unnotified))
	bstore := bbm.NewPostgresStore(db, bbm.PostgresStoreOptions{})
	m, err := bstore.MigrationByName(ctx, backfillMigration)
	if errors.Is(err, bbm.ErrMigrationNotFound) {
		return s
	}
	require.NoError(t, err)
	s.backfillStatus = m.Status
	stats, err := bstore.JobStats(ctx, m.ID)
	require.NoError(t, err)
	s.backfillJobs, s.backfillRunningJobs = stats.Finished, stats.Running
	return s
}

func openDB(t *testing.T, url string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), storage.Config{PrimaryURL: url})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// waitFor polls cond until it holds; the long limit only keeps a broken
// host from hanging the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var addressLine = regexp.MustCompile(`notifications: (http://[^/\s]+)/`)

func waitForAddress(t *testing.T, out *syncbuf.Buffer) string {
	t.Helper()
	var base string
	waitFor(t, "the endpoint's address", func() bool {
		if m := addressLine.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
		return base != ""
	})
	return base
}

// child is the host running as a child process (this test binary, with
// childEnv set).
type child struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	errOut *syncbuf.Buffer
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), out: &syncbuf.Buffer{}, errOut: &syncbuf.Buffer{}}
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.errOut
	require.NoError(t, c.cmd.Start())
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	waitForAddress(t, c.out)
	return c
}

// stop sends sig and waits for a clean exit.
func (c *child) stop(t *testing.T, sig os.Signal) string {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(sig))
	return c.wait(t)
}

// wait waits for the child to exit with status 0 and returns its output.
func (c *child) wait(t *testing.T) string {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	select {
	case err := <-exited:
		t.Logf("host output:\n%s", c.out.String())
		require.NoError(t, err, "host stderr:\n%s", c.errOut.String())
	case <-time.After(2 * time.Minute):
		_ = c.cmd.Process.Signal(syscall.SIGQUIT) // dumps the goroutines to stderr
		<-exited
		t.Fatalf("host did not exit; stderr:\n%s", c.errOut.String())
	}
	return c.out.String()
}
