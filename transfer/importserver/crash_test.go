package importserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/fileblob"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/internal/syncbuf"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// childEnv makes the test binary run registryChild: a registry process
// that embeds the import server, for the crash test to kill.
const childEnv = "FERRY_IMPORTSERVER_CHILD"

// crashCapacity is the enqueuer's capacity and the registry's limit.
const crashCapacity = 10

// crashSpec is the generated source registry of the crash test: many small
// repositories.
func crashSpec(repos int) transfertest.Spec {
	spec := transfertest.SmallSpec(7)
	spec.Repositories, spec.Images = repos, 2*repos
	spec.NestedFraction = 0.3
	spec.MaxBlobSize, spec.DanglingLayers = 1<<10, 0
	return spec
}

// registryChild is a registry host reduced to the import server: the
// transfer importer from the source directory into the destination, the
// Postgres store, the import API on a fixed address. It exits 0 on
// SIGTERM after a graceful Shutdown. Every time its concurrent imports
// reach a new peak it writes it to FERRY_CHILD_PEAK_FILE.
func registryChild() int {
	env := func(k string) string { return os.Getenv("FERRY_CHILD_" + k) }
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "registry child:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: env("DATABASE_URL"), MaxConns: 8})
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	open := func(dir string) (*gocloudblob.Bucket, error) {
		b, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, CreateDir: true})
		if err != nil {
			return nil, err
		}
		return gocloudblob.New(b), nil
	}
	src, err := open(env("SRC"))
	if err != nil {
		return fail(err)
	}
	dst, err := open(env("DST"))
	if err != nil {
		return fail(err)
	}
	layout, _ := transfer.NewLayout("")
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		return fail(err)
	}
	im, err := transfer.NewImporter(src, tr, transfer.NewLayoutSink(dst, layout, transfer.RetryPolicy{}), transfer.ImportOptions{})
	if err != nil {
		return fail(err)
	}
	store, err := importserver.NewPostgresStore(db, importserver.PostgresOptions{})
	if err != nil {
		return fail(err)
	}
	srv, err := importserver.New(importserver.Config{
		Importer:             &peakImporter{Importer: im, file: env("PEAK_FILE")},
		Repositories:         importserver.LayoutRepositories(src, layout),
		Store:                store,
		Authorize:            importserver.BearerSecret(secret),
		MaxConcurrentImports: crashCapacity,
		Instance:             "registry-0",
		HeartbeatInterval:    200 * time.Millisecond,
		StaleAfter:           time.Second,
		Notify: importserver.NotifyConfig{URL: env("NOTIFY_URL"), Secret: "notify-secret",
			Backoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, PollInterval: 100 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return fail(err)
	}
	if err := srv.Start(ctx); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", env("ADDR"))
	if err != nil {
		return fail(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		return fail(err)
	}
	return 0
}

// peakImporter counts the importer calls in flight and records each new
// peak in a file, synchronously, so that a process killed right after
// still told.
type peakImporter struct {
	importserver.Importer
	file      string
	mu        sync.Mutex
	now, peak int
}

func (p *peakImporter) enter() func() {
	p.mu.Lock()
	p.now++
	if p.now > p.peak {
		p.peak = p.now
		// Written whole or not at all, even when killed right now.
		tmp := p.file + ".tmp"
		if os.WriteFile(tmp, []byte(strconv.Itoa(p.peak)), 0o644) == nil {
			_ = os.Rename(tmp, p.file)
		}
	}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.now--
		p.mu.Unlock()
	}
}

func (p *peakImporter) PreImport(ctx context.Context, repos ...string) (*transfer.Report, error) {
	defer p.enter()()
	return p.Importer.PreImport(ctx, repos...)
}

func (p *peakImporter) Import(ctx context.Context, repos ...string) (*transfer.Report, error) {
	defer p.enter()()
	return p.Importer.Import(ctx, repos...)
}

// registryProcess is one run of registryChild.
type registryProcess struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *syncbuf.Buffer
}

func startRegistry(t *testing.T, env []string) *registryProcess {
	t.Helper()
	p := &registryProcess{cmd: exec.Command(os.Args[0], "-test.run=^$"), exited: make(chan error, 1), stderr: &syncbuf.Buffer{}}
	p.cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
	})
	select {
	case ok := <-ready:
		require.True(t, ok, "registry child did not start:\n%s", p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("registry child did not start in time:\n%s", p.stderr.String())
	}
	return p
}

func (p *registryProcess) kill9(t *testing.T) {
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

func (p *registryProcess) terminate(t *testing.T) {
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		require.NoError(t, err, "graceful exit:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("registry child did not exit after SIGTERM")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// Ferry's enqueuer (ParallelLoop, capacity 10) drives the repositories of
// a generated layout through the import server of a registry process over
// loopback HTTP and real Postgres, while the test kills that process with
// SIGKILL at random moments (at least 5 times) and restarts it. In the
// end every repository is imported exactly once (one import_complete
// each), every run's outcome was recorded and notified, no notification
// is pending, the registry never ran more than 10 imports at once, and
// the destination holds exactly the source's tagged content, verified.
func TestCrashRecoveryEndToEnd(t *testing.T) {
	t.Parallel() // waits on Postgres and on the child process: overlaps with the rest
	repos := 200
	if testing.Short() {
		repos = 40
	}
	runCrashTest(t, repos, 5)
}

func runCrashTest(t *testing.T, repos, kills int) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	url := storagetest.URL(t)
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: url, MaxConns: 8})
	require.NoError(t, err)
	t.Cleanup(db.Close)

	dir := t.TempDir()
	srcDir, dstDir := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	srcBlob, err := fileblob.OpenBucket(srcDir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, CreateDir: true})
	require.NoError(t, err)
	defer srcBlob.Close()
	src := gocloudblob.New(srcBlob)
	t0 := time.Now()
	gen, err := transfertest.Generate(ctx, src, crashSpec(repos))
	require.NoError(t, err)
	require.Len(t, gen.Repositories, repos)
	t.Logf("generated %d repositories in %s", repos, time.Since(t0).Round(time.Millisecond))

	// The coordinator: enqueuer store, handler and runs, in this process.
	estore, err := enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{Logger: quietLogger(t)})
	require.NoError(t, err)
	for _, r := range gen.Repositories {
		_, err := estore.Add(ctx, enqueuer.NewRepository{Path: r.Name, TagCount: len(r.Tags)})
		require.NoError(t, err)
	}
	poke := make(chan struct{}, 1)
	wake := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	handler, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: estore, Secret: "notify-secret", Logger: quietLogger(t),
		OnChange: func(context.Context, enqueuer.Repository) { wake() }})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/internal/", handler)
	coord := newServer(t, mux)

	addr := freeAddr(t)
	registry, err := enqueuer.NewHTTPRegistry(enqueuer.HTTPRegistryOptions{BaseURL: "http://" + addr, Token: secret,
		Timeout: 5 * time.Second, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: quietLogger(t)})
	require.NoError(t, err)
	// Until every kill is done the coordinator starts nothing more once
	// three quarters are imported: on a fast machine the migration could
	// otherwise end before the last kill (it did once, after four).
	imported := func(ctx context.Context) (int, error) {
		c, err := estore.Count(storage.UsePrimary(ctx))
		return c.States[enqueuer.StateImportDone], err
	}
	var killing atomic.Bool
	killing.Store(true)
	capacity := func(ctx context.Context) int {
		if killing.Load() {
			if n, err := imported(ctx); err != nil || n >= repos*3/4 {
				return 0
			}
		}
		return crashCapacity
	}
	enq, err := enqueuer.New(enqueuer.Config{
		Store: estore, Registry: registry, Locker: pglease.New(db, pglease.Options{Holder: "test"}),
		LeaseTTL: 30 * time.Second, Capacity: capacity,
		MaxRetries: 1000, MaxAbortsPerRun: -1, Strategy: enqueuer.ParallelLoop{}, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runCtx, stopRuns := context.WithCancel(ctx)
	var runs, starts atomic.Int64
	runsDone := make(chan struct{})
	go func() {
		defer close(runsDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for runCtx.Err() == nil {
			rep, _ := enq.Run(runCtx)
			runs.Add(1)
			starts.Add(int64(len(rep.Started)))
			select {
			case <-runCtx.Done():
			case <-tick.C:
			case <-poke:
			}
		}
	}()
	defer func() { stopRuns(); <-runsDone }()

	doneCount := func() int {
		n, err := imported(ctx)
		require.NoError(t, err)
		return n
	}
	childEnvFor := func(n int) []string {
		return []string{"FERRY_CHILD_DATABASE_URL=" + url, "FERRY_CHILD_SRC=" + srcDir, "FERRY_CHILD_DST=" + dstDir,
			"FERRY_CHILD_ADDR=" + addr, "FERRY_CHILD_NOTIFY_URL=" + coord.URL + "/internal",
			fmt.Sprintf("FERRY_CHILD_PEAK_FILE=%s/peak.%d", dir, n)}
	}

	t.Logf("coordinator ready at %s", time.Since(t0).Round(time.Millisecond))
	// Kill at random moments while the migration runs, then let it finish.
	t1 := time.Now()
	proc := startRegistry(t, childEnvFor(0))
	killed := 0
	for killed < kills {
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
		done := doneCount()
		proc.kill9(t)
		killed++
		t.Logf("kill -9 #%d at %s with %d/%d imported", killed, time.Since(t1).Round(time.Millisecond), done, repos)
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // down for a while
		proc = startRegistry(t, childEnvFor(killed))
	}
	killing.Store(false)
	wake()
	deadline := time.Now().Add(90 * time.Second)
	for doneCount() < repos {
		if time.Now().After(deadline) {
			dumpStuck(t, db, estore)
			t.Fatalf("not every repository was imported; registry stderr:\n%s", proc.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	istore, err := importserver.NewPostgresStore(db, importserver.PostgresOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := istore.OutboxStats(ctx)
		return err == nil && st.Pending == 0
	}, time.Minute, 50*time.Millisecond, "every notification answered")
	elapsed := time.Since(t1)
	stopRuns()
	<-runsDone
	proc.terminate(t)
	t.Logf("drained and stopped at %s", time.Since(t1).Round(time.Millisecond))
	require.GreaterOrEqual(t, killed, kills, "killed at least %d times", kills)

	// Every repository imported exactly once, every run notified.
	rows, err := db.Query(ctx, `SELECT n.path, n.run, n.status, n.state, n.last_code, n.last_error, i.status, i.run
		FROM ferry_importserver_notifications n JOIN ferry_importserver_imports i USING (path) ORDER BY n.path, n.run`)
	require.NoError(t, err)
	type note struct {
		run                        int64
		status, state, importState string
		code                       int
		lastErr                    string
		lastRun                    int64
	}
	byPath := map[string][]note{}
	for rows.Next() {
		var path string
		var n note
		require.NoError(t, rows.Scan(&path, &n.run, &n.status, &n.state, &n.code, &n.lastErr, &n.importState, &n.lastRun))
		byPath[path] = append(byPath[path], n)
	}
	require.NoError(t, rows.Err())
	require.Len(t, byPath, repos)
	var notes, refused, superseded, failedRuns, completes int
	for path, ns := range byPath {
		completes = 0
		for i, n := range ns {
			notes++
			require.Equal(t, int64(i+1), n.run, "%s: run %d has no recorded outcome", path, i+1)
			require.Equal(t, "import_complete", n.importState, path)
			require.Equal(t, n.lastRun, ns[len(ns)-1].run, "%s: the last run's outcome was notified", path)
			switch n.state {
			case "delivered":
			case "superseded":
				// A new run started before it was delivered (the coordinator
				// retried a start whose answer was lost with the process).
				superseded++
			case "failed":
				// The coordinator refused it: it had moved on (a start whose
				// answer was lost with the registry process was reverted).
				require.Equal(t, http.StatusBadRequest, n.code, "%s run %d: %s", path, n.run, n.lastErr)
				require.Contains(t, n.lastErr, "wrong migration state", "%s run %d", path, n.run)
				refused++
			default:
				t.Fatalf("%s run %d: notification %s", path, n.run, n.state)
			}
			if strings.HasSuffix(n.status, "failed") {
				failedRuns++
			}
			if n.status == "import_complete" {
				completes++
				require.Equal(t, "delivered", n.state, "%s: import_complete delivered", path)
			}
		}
		require.Equal(t, 1, completes, "%s imported exactly once", path)
	}
	repsDone, err := estore.List(storage.UsePrimary(ctx), enqueuer.ListOptions{State: enqueuer.StateImportDone, Limit: 10_000})
	require.NoError(t, err)
	require.Len(t, repsDone, repos)

	// Never more than the limit at once, in any process.
	peak := 0
	for i := 0; i <= killed; i++ {
		raw, err := os.ReadFile(fmt.Sprintf("%s/peak.%d", dir, i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		n, err := strconv.Atoi(string(raw))
		require.NoError(t, err)
		peak = max(peak, n)
	}
	require.LessOrEqual(t, peak, crashCapacity)
	require.Positive(t, peak)

	t.Logf("checked the outbox at %s", time.Since(t1).Round(time.Millisecond))
	// The destination is exactly the source's tagged content, verified.
	dstBlob, err := fileblob.OpenBucket(dstDir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	require.NoError(t, err)
	defer dstBlob.Close()
	dst := gocloudblob.New(dstBlob)
	got, err := transfertest.ReadLayoutState(ctx, dst, gen.Layout)
	require.NoError(t, err)
	require.Empty(t, transfertest.Diff(gen.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport}), got))
	blobs, err := transfertest.CheckBlobs(ctx, dst, gen.Layout)
	require.NoError(t, err)
	t.Logf("verified at %s", time.Since(t1).Round(time.Millisecond))
	t.Logf("%d repositories in %s with %d kill -9: %d outcomes recorded (%d failed runs; %d superseded by a new run, %d refused by the coordinator), "+
		"peak %d concurrent imports, %d enqueuer runs, %d starts, %d blobs verified",
		repos, elapsed.Round(time.Millisecond), killed, notes, failedRuns, superseded, refused, peak, runs.Load(), starts.Load(), blobs)
}

// dumpStuck logs what is not finished, on both sides.
func dumpStuck(t *testing.T, db *storage.DB, estore *enqueuer.PostgresStore) {
	ctx := storage.UsePrimary(context.Background())
	for _, st := range enqueuer.States {
		if st == enqueuer.StateImportDone {
			continue
		}
		rs, err := estore.List(ctx, enqueuer.ListOptions{State: st, Limit: 20})
		require.NoError(t, err)
		for _, r := range rs {
			var status, detail string
			var run int64
			_ = db.QueryRow(ctx, `SELECT status, detail, run FROM ferry_importserver_imports WHERE path = $1`, r.Path).Scan(&status, &detail, &run)
			t.Logf("stuck: %s enqueuer=%s retries=%d abort=%q | registry=%s run %d %q", r.Path, r.State, r.RetryCount, r.AbortReason, status, run, detail)
			rows, _ := db.Query(ctx, `SELECT run, status, state, attempts, last_code, last_error FROM ferry_importserver_notifications WHERE path = $1 ORDER BY id`, r.Path)
			for rows.Next() {
				var nrun int64
				var nst, state, lastErr string
				var attempts, code int
				_ = rows.Scan(&nrun, &nst, &state, &attempts, &code, &lastErr)
				t.Logf("    notification run %d %s: %s after %d attempts (last %d %q)", nrun, nst, state, attempts, code, lastErr)
			}
			rows.Close()
		}
	}
}
