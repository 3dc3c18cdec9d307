package importserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

// The statuses are the coordinator's, string for string.
func TestStatusesMatchTheEnqueuer(t *testing.T) {
	want := map[importserver.Status]enqueuer.RegistryStatus{
		importserver.StatusNative:              enqueuer.StatusNative,
		importserver.StatusPreImportInProgress: enqueuer.StatusPreImportInProgress,
		importserver.StatusPreImportComplete:   enqueuer.StatusPreImportComplete,
		importserver.StatusPreImportFailed:     enqueuer.StatusPreImportFailed,
		importserver.StatusPreImportCanceled:   enqueuer.StatusPreImportCanceled,
		importserver.StatusImportInProgress:    enqueuer.StatusImportInProgress,
		importserver.StatusImportComplete:      enqueuer.StatusImportComplete,
		importserver.StatusImportFailed:        enqueuer.StatusImportFailed,
		importserver.StatusImportCanceled:      enqueuer.StatusImportCanceled,
	}
	for s, e := range want {
		require.Equal(t, string(e), string(s))
	}
	require.Len(t, importserver.Statuses, len(want)-1)
	require.Equal(t, enqueuer.NotifyPreImportComplete, string(importserver.StatusPreImportComplete))
	require.Equal(t, enqueuer.NotifyPreImportFailed, string(importserver.StatusPreImportFailed))
	require.Equal(t, enqueuer.NotifyImportComplete, string(importserver.StatusImportComplete))
	require.Equal(t, enqueuer.NotifyImportFailed, string(importserver.StatusImportFailed))
	require.Equal(t, enqueuer.NotifyPreImportCanceled, string(importserver.StatusPreImportCanceled))
	require.Equal(t, enqueuer.NotifyImportCanceled, string(importserver.StatusImportCanceled))
}

// Ferry's own coordinator pieces, enqueuer.HTTPRegistry and
// enqueuer.Handler, understand every answer and notification.
func TestEnqueuerSpeaksTheProtocol(t *testing.T) {
	ctx := context.Background()
	estore := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	handler, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: estore, Secret: "notify-secret", Logger: quietLogger(t)})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/internal/", handler)
	coord := newServer(t, mux)

	store := newMemStore()
	im := newFixtureImporter()
	cfg := baseConfig(t, store, im, coord.URL+"/internal")
	cfg.MaxConcurrentImports = 2
	srv, err := importserver.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	reg := newServer(t, srv.Handler())
	client, err := enqueuer.NewHTTPRegistry(enqueuer.HTTPRegistryOptions{BaseURL: reg.URL, Token: secret, Logger: quietLogger(t)})
	require.NoError(t, err)

	for _, p := range []string{"group/image", "a"} {
		_, err := estore.Add(ctx, enqueuer.NewRepository{Path: p})
		require.NoError(t, err)
	}
	moveRepo := func(path string, ev enqueuer.Event) {
		r, err := estore.Get(ctx, path)
		require.NoError(t, err)
		_, err = estore.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: ev})
		require.NoError(t, err)
	}
	move := func(ev enqueuer.Event) { moveRepo("group/image", ev) }
	stateOf := func(path string) enqueuer.State {
		r, err := estore.Get(ctx, path)
		require.NoError(t, err)
		return r.State
	}
	state := func() enqueuer.State { return stateOf("group/image") }

	require.ErrorIs(t, client.StartImport(ctx, "group/image"), enqueuer.ErrPreImportFailed)
	require.ErrorIs(t, client.StartPreImport(ctx, "no/such"), enqueuer.ErrRegistryNotFound)
	_, err = client.ImportStatus(ctx, "no/such")
	require.ErrorIs(t, err, enqueuer.ErrRegistryNotFound)
	st, err := client.ImportStatus(ctx, "group/other")
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusUnknown, st.Status, "exists, never imported")

	im.Hold("group/image")
	move(enqueuer.EventStartPreImport)
	require.NoError(t, client.StartPreImport(ctx, "group/image"))
	require.ErrorIs(t, client.StartPreImport(ctx, "group/image"), enqueuer.ErrImportInProgress)
	require.ErrorIs(t, client.StartImport(ctx, "group/image"), enqueuer.ErrTooEarly, "425: the pre-import still runs")
	st, err = client.ImportStatus(ctx, "group/image")
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusPreImportInProgress, st.Status)
	require.True(t, st.InProgress())
	require.Nil(t, st.Progress, "an Importer that is not a *transfer.Importer reports no progress")

	im.Hold("a")
	moveRepo("a", enqueuer.EventStartPreImport)
	require.NoError(t, client.StartPreImport(ctx, "a"))
	require.ErrorIs(t, client.StartPreImport(ctx, "b"), enqueuer.ErrTooManyImports)
	require.NoError(t, client.CancelImport(ctx, "a"))
	waitStatus(t, store, "a", importserver.StatusPreImportCanceled)
	require.Eventually(t, func() bool { return stateOf("a") == enqueuer.StateImportAborted }, 5*time.Second, 5*time.Millisecond,
		"the Handler applied pre_import_canceled")
	require.Eventually(t, func() bool {
		st, err := store.OutboxStats(ctx)
		require.NoError(t, err)
		return st.Pending == 0 && st.Failed == 0
	}, 5*time.Second, 5*time.Millisecond, "the cancellation was delivered, not refused")

	im.Release("group/image")
	require.Eventually(t, func() bool { return state() == enqueuer.StatePreImportDone }, 5*time.Second, 5*time.Millisecond,
		"the Handler applied pre_import_complete")
	move(enqueuer.EventStartImport)
	require.NoError(t, client.StartImport(ctx, "group/image"))
	require.Eventually(t, func() bool { return state() == enqueuer.StateImportDone }, 5*time.Second, 5*time.Millisecond)
	st, err = client.ImportStatus(ctx, "group/image")
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusImportComplete, st.Status)
	require.ErrorIs(t, client.StartPreImport(ctx, "group/image"), enqueuer.ErrNative, "200: nothing to do")
	require.ErrorIs(t, client.StartPreImport(ctx, "native/one"), enqueuer.ErrNative)
	st, err = client.ImportStatus(ctx, "native/one")
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusNative, st.Status)
}

func TestTimeoutsFailTheImport(t *testing.T) {
	f := newFixture(t, func(c *importserver.Config) {
		c.PreImportTimeout = 50 * time.Millisecond
		c.ImportTimeout = 50 * time.Millisecond
	})
	f.im.Hold("group/image")
	code, _, _ := f.call(t, http.MethodPut, "group/image", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	n := f.coord.waitFor(t, "group/image", importserver.StatusPreImportFailed)
	require.Equal(t, "pre-import timed out after 50ms", n.Detail)
	code, st, _ := f.call(t, http.MethodGet, "group/image", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "pre-import timed out after 50ms", st.LastError)
}

func TestImporterFailurePanicAndTooLarge(t *testing.T) {
	tooLarge := importserver.Importer(tooLargeImporter{})
	f := newFixture(t, nil)
	f.im.Fail("a", errors.New("reading tags: HTTP 503"))
	code, _, _ := f.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "reading tags: HTTP 503", f.coord.waitFor(t, "a", importserver.StatusPreImportFailed).Detail)

	g := newFixture(t, func(c *importserver.Config) { c.Importer = panicImporter{} })
	code, _, _ = g.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "importer panicked: sink exploded", g.coord.waitFor(t, "a", importserver.StatusPreImportFailed).Detail)

	h := newFixture(t, func(c *importserver.Config) { c.Importer = tooLarge })
	code, _, _ = h.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Contains(t, h.coord.waitFor(t, "a", importserver.StatusPreImportFailed).Detail, "has 9 tags, more than the importer's limit of 5")
}

type panicImporter struct{}

func (panicImporter) PreImport(context.Context, ...string) (*transfer.Report, error) {
	panic("sink exploded")
}
func (panicImporter) Import(context.Context, ...string) (*transfer.Report, error) {
	panic("sink exploded")
}

type tooLargeImporter struct{}

func (tooLargeImporter) PreImport(_ context.Context, repos ...string) (*transfer.Report, error) {
	return &transfer.Report{TooLarge: []transfer.TooLargeRepository{{Name: repos[0], Tags: 9, Limit: 5}}}, nil
}
func (t tooLargeImporter) Import(ctx context.Context, repos ...string) (*transfer.Report, error) {
	return t.PreImport(ctx, repos...)
}

// Shutdown cancels running imports, records them as failed (and notifies
// that), and leaves no goroutine behind.
func TestShutdownRecordsRunningImports(t *testing.T) {
	before := runtime.NumGoroutine()
	coord := newCoordinator(t)
	store := newMemStore()
	im := newFixtureImporter()
	srv, err := importserver.New(baseConfig(t, store, im, coord.url()))
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	ts := newServer(t, srv.Handler())
	for _, p := range []string{"a", "b"} {
		im.Hold(p)
		code, _, _ := callAPI(t, ts.URL, http.MethodPut, p, "import_type=pre", "Bearer "+secret, nil)
		require.Equal(t, http.StatusAccepted, code)
	}
	require.Eventually(t, func() bool { return im.Running("a")+im.Running("b") == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, srv.Shutdown(context.Background()))
	for _, p := range []string{"a", "b"} {
		i, err := store.Get(context.Background(), p)
		require.NoError(t, err)
		require.Equal(t, importserver.StatusPreImportFailed, i.Status)
		require.Equal(t, "interrupted: the registry is shutting down", i.Detail)
	}
	require.Len(t, coord.notifications(), 2, "Shutdown flushed the outbox once")
	ts.Close()
	coord.srv.Close()
	http.DefaultClient.CloseIdleConnections()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+2 }, 5*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d after", before, runtime.NumGoroutine())
	require.NoError(t, srv.Shutdown(context.Background()), "a second Shutdown is a no-op")
}

// A Shutdown whose context ends before the imports recorded their
// outcomes still returns, with every goroutine ended; what was not
// recorded is found stale by the next start.
func TestShutdownDeadline(t *testing.T) {
	coord := newCoordinator(t)
	store := &blockingFinish{Store: newMemStore(), release: make(chan struct{})}
	im := newFixtureImporter()
	srv, err := importserver.New(baseConfig(t, store, im, coord.url()))
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	ts := newServer(t, srv.Handler())
	im.Hold("a")
	code, _, _ := callAPI(t, ts.URL, http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return im.Running("a") == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, srv.Shutdown(ctx), context.DeadlineExceeded)
	i, err := store.Get(context.Background(), "a")
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportInProgress, i.Status, "not recorded: left for the stale sweep")

	// The next process with the same Instance ends it at once.
	close(store.release)
	srv2, err := importserver.New(baseConfig(t, store.Store, im, coord.url()))
	require.NoError(t, err)
	require.NoError(t, srv2.Start(context.Background()))
	defer srv2.Shutdown(context.Background())
	i, err = store.Get(context.Background(), "a")
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportFailed, i.Status)
	require.Contains(t, i.Detail, "registry-0 stopped while importing")
	coord.waitFor(t, "a", importserver.StatusPreImportFailed)
}

// blockingFinish is a store whose Finish waits for release (a database
// that hangs).
type blockingFinish struct {
	*importservertest.Store
	release chan struct{}
}

func (b *blockingFinish) Finish(ctx context.Context, o importserver.Outcome) (importserver.Import, *importserver.Notification, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return importserver.Import{}, nil, ctx.Err()
	}
	return b.Store.Finish(ctx, o)
}

// Notifications are retried with backoff until a 2xx, given up after
// MaxRefusals refusals, delivered one at a time per repository and in
// order, and survive a new process.
func TestOutboxDelivery(t *testing.T) {
	var mu sync.Mutex
	var events []importserver.DeliveryEvent
	var stats []importserver.OutboxStats
	obs := importserver.ObserverFuncs{
		OnDeliveryEnd: func(_ context.Context, e importserver.DeliveryEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		},
		OnOutboxChecked: func(_ context.Context, s importserver.OutboxStats) {
			mu.Lock()
			stats = append(stats, s)
			mu.Unlock()
		},
	}
	f := newFixture(t, func(c *importserver.Config) { c.Observer = obs; c.Notify.MaxRefusals = 3 })
	// a: the coordinator is down twice, then accepts. b: it refuses.
	f.coord.setAnswer(func(r received, call int) int {
		switch {
		case r.Path == "b":
			return http.StatusBadRequest
		case r.Path == "a" && call <= 2:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	code, _, _ := f.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	f.coord.waitFor(t, "a", importserver.StatusPreImportComplete)
	code, _, _ = f.call(t, http.MethodPut, "b", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool {
		st, err := f.store.OutboxStats(context.Background())
		return err == nil && st.Failed == 1
	}, 5*time.Second, 5*time.Millisecond, "b given up")
	ns := f.store.(*importservertest.Store).Notifications()
	require.Len(t, ns, 2)
	require.Equal(t, importserver.NotificationDelivered, ns[0].State)
	require.Equal(t, 3, ns[0].Attempts)
	require.Equal(t, importserver.NotificationFailed, ns[1].State)
	require.Equal(t, 3, ns[1].Refusals)
	require.Equal(t, 400, ns[1].LastCode)

	mu.Lock()
	var results []importserver.DeliveryResult
	for _, e := range events {
		results = append(results, e.Result)
	}
	mu.Unlock()
	require.Equal(t, 1, count(results, importserver.Delivered))
	require.Equal(t, 1, count(results, importserver.GiveUp))
	require.Equal(t, 4, count(results, importserver.Retry))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(stats) > 0 && stats[len(stats)-1].Failed == 1 && stats[len(stats)-1].Pending == 0
	}, 5*time.Second, 5*time.Millisecond, "the outbox's state is reported")
}

func count[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// On Postgres: a process that died mid-import leaves imports in progress;
// the next process with its Instance ends them at start-up and notifies,
// and another instance's import is ended by the stale sweep once its
// heartbeats stop. Notifications left undelivered are sent by the new
// process.
func TestStaleImportsOnPostgres(t *testing.T) {
	ctx := context.Background()
	store, err := importserver.NewPostgresStore(storage.FromPool(storagetest.Pool(t)), importserver.PostgresOptions{})
	require.NoError(t, err)
	coord := newCoordinator(t)
	down := true
	var mu sync.Mutex
	coord.setAnswer(func(received, int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	// What a killed process left: two imports of its own, one of another
	// instance, and an undelivered outcome.
	for _, b := range []importserver.BeginRequest{
		{Path: "a", Type: importserver.PreImport, Owner: "registry-0"},
		{Path: "b", Type: importserver.PreImport, Owner: "registry-0"},
		{Path: "c", Type: importserver.PreImport, Owner: "registry-1"},
		{Path: "group/image", Type: importserver.PreImport, Owner: "registry-0"},
	} {
		_, err := store.Begin(ctx, b)
		require.NoError(t, err)
	}
	gi, err := store.Get(ctx, "group/image")
	require.NoError(t, err)
	_, _, err = store.Finish(ctx, importserver.Outcome{Path: "group/image", Run: gi.Run, Status: importserver.StatusPreImportComplete})
	require.NoError(t, err)

	var staleSeen sync.Map
	cfg := baseConfig(t, store, newFixtureImporter(), coord.url())
	cfg.Observer = importserver.ObserverFuncs{OnStaleFailed: func(_ context.Context, e importserver.ImportEvent) {
		staleSeen.Store(e.Import.Path, e.Import.Status)
	}}
	srv, err := importserver.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	defer srv.Shutdown(ctx)
	for _, p := range []string{"a", "b"} {
		i, err := store.Get(ctx, p)
		require.NoError(t, err)
		require.Equal(t, importserver.StatusPreImportFailed, i.Status, "ended at start-up")
		s, ok := staleSeen.Load(p)
		require.True(t, ok)
		require.Equal(t, importserver.StatusPreImportFailed, s)
	}
	i, err := store.Get(ctx, "c")
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportInProgress, i.Status, "another instance's import is not ended at once")
	waitStatus(t, store, "c", importserver.StatusPreImportFailed) // after StaleAfter (2 s) without heartbeat
	require.Contains(t, mustGet(t, store, "c").Detail, "no heartbeat")

	mu.Lock()
	down = false
	mu.Unlock()
	for _, p := range []string{"a", "b", "c"} {
		coord.waitFor(t, p, importserver.StatusPreImportFailed)
	}
	coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
	require.Eventually(t, func() bool {
		st, err := store.OutboxStats(ctx)
		return err == nil && st.Pending == 0
	}, 5*time.Second, 5*time.Millisecond)
}

func mustGet(t *testing.T, s importserver.Store, path string) importserver.Import {
	t.Helper()
	i, err := s.Get(context.Background(), path)
	require.NoError(t, err)
	return i
}

// Two instances share a Postgres store: a cancellation asked of one stops
// the import the other runs (it learns at its heartbeat), and a running
// import keeps its heartbeat, so the other's stale sweep leaves it alone.
func TestTwoInstancesOnPostgres(t *testing.T) {
	ctx := context.Background()
	pool := storagetest.Pool(t)
	coord := newCoordinator(t)
	im := newFixtureImporter()
	var srvs []*importserver.Server
	var urls []string
	for _, inst := range []string{"registry-0", "registry-1"} {
		store, err := importserver.NewPostgresStore(storage.FromPool(pool), importserver.PostgresOptions{})
		require.NoError(t, err)
		cfg := baseConfig(t, store, im, coord.url())
		cfg.Instance = inst
		cfg.HeartbeatInterval, cfg.StaleAfter = 50*time.Millisecond, 500*time.Millisecond
		srv, err := importserver.New(cfg)
		require.NoError(t, err)
		require.NoError(t, srv.Start(ctx))
		defer srv.Shutdown(ctx)
		srvs = append(srvs, srv)
		urls = append(urls, newServer(t, srv.Handler()).URL)
	}
	im.Hold("a")
	code, st, _ := callAPI(t, urls[0], http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "registry-0", st.Owner)
	code, _, _ = callAPI(t, urls[1], http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusConflict, code, "one store, one import")
	time.Sleep(time.Second) // two StaleAfter: the heartbeats keep it alive
	code, st, _ = callAPI(t, urls[1], http.MethodGet, "a", "", "Bearer "+secret, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, importserver.StatusPreImportInProgress, st.Status)

	code, _, _ = callAPI(t, urls[1], http.MethodDelete, "a", "", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	n := coord.waitFor(t, "a", importserver.StatusPreImportCanceled)
	require.Equal(t, "canceled by request", n.Detail)
	require.Zero(t, im.Running("a"))
	require.Equal(t, "registry-0", mustGet(t, srvStore(t, storage.FromPool(pool)), "a").Owner)
}

func srvStore(t *testing.T, pool storage.Handle) importserver.Store {
	s, err := importserver.NewPostgresStore(pool, importserver.PostgresOptions{})
	require.NoError(t, err)
	return s
}

func TestLongDetailsAreClipped(t *testing.T) {
	f := newFixture(t, nil)
	f.im.Fail("a", errors.New(strings.Repeat("x", 10_000)))
	code, _, _ := f.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	n := f.coord.waitFor(t, "a", importserver.StatusPreImportFailed)
	require.LessOrEqual(t, len(n.Detail), importserver.MaxDetailLength)
}

// A new run supersedes the undelivered outcome of the previous one: the
// coordinator has moved on (it started again), so the old outcome is never
// sent, and the new one is.
func TestNewRunSupersedesUndeliveredOutcome(t *testing.T) {
	f := newFixture(t, func(c *importserver.Config) { c.Notify.Backoff = time.Hour; c.Notify.MaxBackoff = time.Hour })
	var down atomicBool
	down.Store(true)
	f.coord.setAnswer(func(received, int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	f.im.Fail("a", errors.New("first attempt"))
	code, _, _ := f.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	waitStatus(t, f.store, "a", importserver.StatusPreImportFailed)
	require.Eventually(t, func() bool {
		ns := f.store.(*importservertest.Store).Notifications()
		return len(ns) == 1 && ns[0].Attempts == 1
	}, 5*time.Second, time.Millisecond, "the failure's delivery failed once and backs off")

	down.Store(false)
	f.im.Fail("a", nil)
	code, _, _ = f.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	f.coord.waitFor(t, "a", importserver.StatusPreImportComplete)
	require.Len(t, f.coord.notifications(), 1, "the first run's failure was never sent")
	ns := f.store.(*importservertest.Store).Notifications()
	require.Equal(t, importserver.NotificationSuperseded, ns[0].State)
}

// With ShutdownGrace, running imports may finish before Shutdown cancels
// what is left.
func TestShutdownGrace(t *testing.T) {
	coord := newCoordinator(t)
	store := newMemStore()
	im := newFixtureImporter()
	cfg := baseConfig(t, store, im, coord.url())
	cfg.ShutdownGrace = 5 * time.Second
	srv, err := importserver.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	ts := newServer(t, srv.Handler())
	im.Hold("a")
	code, _, _ := callAPI(t, ts.URL, http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return im.Running("a") == 1 }, 5*time.Second, time.Millisecond)
	time.AfterFunc(100*time.Millisecond, func() { im.Release("a") })
	require.NoError(t, srv.Shutdown(context.Background()))
	require.Equal(t, importserver.StatusPreImportComplete, mustGet(t, store, "a").Status, "it finished within the grace")
	coord.waitFor(t, "a", importserver.StatusPreImportComplete)
}

// hangingStore is a store whose first heartbeat and first claim hang until
// their context ends, like calls on a connection that died silently.
type hangingStore struct {
	importserver.Store
	beats, claims atomic.Int64
}

func (s *hangingStore) Heartbeat(ctx context.Context, owner string, refs []importserver.RunRef) ([]importserver.Import, error) {
	if s.beats.Add(1) == 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Heartbeat(ctx, owner, refs)
}

func (s *hangingStore) ClaimNotifications(ctx context.Context, req importserver.ClaimRequest) ([]importserver.Notification, error) {
	if s.claims.Add(1) == 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.ClaimNotifications(ctx, req)
}

// A store call that hangs holds up neither the heartbeats and the stale
// sweep after it nor the deliveries: each is bounded.
func TestHangingStoreCallsAreBounded(t *testing.T) {
	ctx := context.Background()
	store := &hangingStore{Store: newMemStore()}
	coord := newCoordinator(t)
	cfg := baseConfig(t, store, newFixtureImporter(), coord.url())
	cfg.Notify.Timeout = 50 * time.Millisecond
	cfg.Notify.LeaseFor = 100 * time.Millisecond
	im := cfg.Importer.(*importservertest.Importer)
	im.Hold("a")
	srv, err := importserver.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	defer srv.Shutdown(ctx)
	// Another instance's import, whose heartbeats stopped.
	_, err = store.Begin(ctx, importserver.BeginRequest{Path: "c", Type: importserver.PreImport, Owner: "registry-1"})
	require.NoError(t, err)
	api := newServer(t, srv.Handler())
	code, _, _ := callAPI(t, api.URL, http.MethodPut, "a", "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)

	waitStatus(t, store, "c", importserver.StatusPreImportFailed)
	coord.waitFor(t, "c", importserver.StatusPreImportFailed)
	require.Greater(t, store.beats.Load(), int64(1), "heartbeats went on")
	require.Equal(t, importserver.StatusPreImportInProgress, mustGet(t, store, "a").Status, "a's heartbeats kept it alive")
	im.Release("a")
	coord.waitFor(t, "a", importserver.StatusPreImportComplete)
}

// claimCounter counts the Finish calls that claim their notification.
type claimCounter struct {
	importserver.Store
	claimed, unclaimed atomic.Int32
}

func (c *claimCounter) Finish(ctx context.Context, o importserver.Outcome) (importserver.Import, *importserver.Notification, error) {
	if o.Claim != nil {
		c.claimed.Add(1)
	} else {
		c.unclaimed.Add(1)
	}
	return c.Store.Finish(ctx, o)
}

// Many outcomes recorded at once behind a slow coordinator: Finish claims
// only one batch's worth for the delivery loop and leaves the rest to the
// outbox claim, so none waits in memory past its lease and is sent twice.
func TestSlowCoordinatorBacklogOutlivesNoLease(t *testing.T) {
	const n = 17
	store := &claimCounter{Store: newMemStore()}
	f := newFixture(t, func(c *importserver.Config) {
		c.Store = store
		c.Repositories = importserver.RepositoriesFunc(func(context.Context, string) (bool, error) { return true, nil })
		c.MaxConcurrentImports = n
		c.Notify.Concurrency = 1 // one batch: 2 notifications
		c.Notify.Timeout = 500 * time.Millisecond
		c.Notify.LeaseFor = time.Second
	})
	f.coord.setAnswer(func(received, int) int {
		time.Sleep(80 * time.Millisecond) // n of them in a row outlast the lease
		return http.StatusOK
	})
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("slow/r%02d", i)
		f.im.Hold(paths[i])
		code, _, _ := f.call(t, http.MethodPut, paths[i], "import_type=pre")
		require.Equal(t, http.StatusAccepted, code)
	}
	require.Eventually(t, func() bool { return f.im.Peak() == n }, 5*time.Second, time.Millisecond)
	for _, p := range paths {
		f.im.Release(p)
	}
	for _, p := range paths {
		f.coord.waitFor(t, p, importserver.StatusPreImportComplete)
	}
	require.Eventually(t, func() bool {
		st, err := store.OutboxStats(context.Background())
		return err == nil && st.Pending == 0
	}, 10*time.Second, 5*time.Millisecond)
	// Shutdown's last pass sends whatever was still handed over.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.srv.Shutdown(ctx))
	got := map[string]int{}
	for _, r := range f.coord.notifications() {
		got[r.Path]++
	}
	for _, p := range paths {
		require.Equal(t, 1, got[p], "notifications of %s", p)
	}
	require.Equal(t, int32(n), store.claimed.Load()+store.unclaimed.Load())
	require.Positive(t, store.unclaimed.Load(), "Finish stops claiming once a batch waits")
}
