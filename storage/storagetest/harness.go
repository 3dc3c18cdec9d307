package storagetest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/storage"
)

// EnvURL names the environment variable that points tests at an existing
// server instead of a throwaway one. The role must be allowed to create
// databases.
const EnvURL = "FERRY_TEST_DATABASE_URL"

// harness is the one server (or external URL) a test binary shares. It is
// the only package-level state in Ferry, and it lives in a test helper: a
// test binary must share one server to stay fast.
type harness struct {
	mu       sync.Mutex
	started  bool
	err      error
	local    *Server // throwaway server, when one was started
	adminURL string  // where databases are created
	admin    *pgx.Conn
	template string
	fileCopy bool // server supports CREATE DATABASE ... STRATEGY FILE_COPY
	count    atomic.Int64

	// The PgBouncer in front of the server (BouncerURL), once asked for.
	bouncerStarted bool
	pgbouncer      *Bouncer
	bouncerErr     error

	// Migrated databases made ahead of demand by one goroutine, so a test
	// takes one in microseconds while the next is being copied.
	ready      chan string
	stopFiller context.CancelFunc
	fillerDone chan struct{}
}

// prefetch is how many migrated databases are kept ready.
const prefetch = 2

var shared harness

// Main runs a test binary's tests and then stops the shared server and
// drops what it created. Use it as: func TestMain(m *testing.M) { storagetest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	shared.close()
	os.Exit(code)
}

// unavailable fails the test under CI=true and skips it elsewhere, with the
// reason either way: a missing server (PostgreSQL, PgBouncer) is never
// silently ignored.
func unavailable(t testing.TB, server string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", server, err)
	}
	t.Skipf("skipping: %v", err)
}

func (h *harness) ensure(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return h.err
	}
	h.started = true
	h.err = h.start(ctx)
	return h.err
}

func (h *harness) start(ctx context.Context) error {
	h.adminURL = os.Getenv(EnvURL)
	if h.adminURL == "" {
		if err := h.ensureLocalLocked(ctx); err != nil {
			return err
		}
		h.adminURL = h.local.URL("postgres")
	}
	admin, err := pgx.Connect(ctx, h.adminURL)
	if err != nil {
		return fmt.Errorf("storagetest: connecting to the admin database: %w", err)
	}
	h.admin = admin
	var version int
	if err := admin.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return fmt.Errorf("storagetest: reading the server version: %w", err)
	}
	// FILE_COPY (PG15+) copies the template's files instead of WAL-logging
	// every page, which is about twice as fast for a small database.
	h.fileCopy = version >= 150000
	h.template = fmt.Sprintf("ferry_tpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{h.template}.Sanitize()); err != nil {
		return fmt.Errorf("storagetest: creating template database: %w", err)
	}
	pool, err := pgxpool.New(ctx, withDatabase(h.adminURL, h.template))
	if err != nil {
		return fmt.Errorf("storagetest: connecting to the template: %w", err)
	}
	defer pool.Close()
	if err := storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return fmt.Errorf("storagetest: migrating the template: %w", err)
	}
	fillCtx, cancel := context.WithCancel(context.Background())
	h.ready, h.stopFiller, h.fillerDone = make(chan string, prefetch), cancel, make(chan struct{})
	go h.fill(fillCtx)
	return nil
}

// fill keeps h.ready topped up until ctx ends. On an error it stops, and
// tests fall back to creating their own databases.
func (h *harness) fill(ctx context.Context) {
	defer close(h.fillerDone)
	for {
		name, err := h.createDatabase(ctx, true)
		if err != nil {
			return
		}
		select {
		case h.ready <- name:
		case <-ctx.Done():
			_ = h.dropDatabase(name)
			return
		}
	}
}

// migratedDatabase takes a prefetched database, or makes one.
func (h *harness) migratedDatabase(ctx context.Context) (string, error) {
	select {
	case name := <-h.ready:
		return name, nil
	default:
		return h.createDatabase(ctx, true)
	}
}

func (h *harness) ensureLocalLocked(ctx context.Context) error {
	if h.local != nil {
		return nil
	}
	s, err := Start(ctx, ServerOptions{})
	if err != nil {
		return err
	}
	h.local = s
	return nil
}

// localServer starts (once) and returns the throwaway server, even when
// EnvURL points elsewhere: replicas need a server we control.
func (h *harness) localServer(ctx context.Context) (*Server, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ensureLocalLocked(ctx); err != nil {
		return nil, err
	}
	return h.local, nil
}

func (h *harness) close() {
	if h.stopFiller != nil {
		h.stopFiller()
		<-h.fillerDone
		for len(h.ready) > 0 {
			_ = h.dropDatabase(<-h.ready)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pgbouncer != nil {
		h.pgbouncer.Stop()
		h.pgbouncer = nil
	}
	ctx := context.Background()
	if h.admin != nil {
		if h.local == nil || h.adminURL != h.local.URL("postgres") {
			_, _ = h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{h.template}.Sanitize()+" WITH (FORCE)")
		}
		_ = h.admin.Close(ctx)
		h.admin = nil
	}
	if h.local != nil {
		_ = h.local.Stop()
		h.local = nil
	}
}

// createDatabase makes a database (a copy of the migrated template when
// migrated) and returns its name.
func (h *harness) createDatabase(ctx context.Context, migrated bool) (string, error) {
	name := fmt.Sprintf("ferry_test_%d_%d", os.Getpid(), h.count.Add(1))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if migrated {
		sql += " TEMPLATE " + pgx.Identifier{h.template}.Sanitize()
		if h.fileCopy {
			sql += " STRATEGY FILE_COPY"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.admin.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("storagetest: creating database %s: %w", name, err)
	}
	return name, nil
}

func (h *harness) dropDatabase(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.admin == nil {
		return nil
	}
	_, err := h.admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func newDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	ctx := context.Background()
	if err := shared.ensure(ctx); err != nil {
		unavailable(t, "PostgreSQL", err)
	}
	var name string
	var err error
	if migrated {
		name, err = shared.migratedDatabase(ctx)
	} else {
		name, err = shared.createDatabase(ctx, false)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := shared.dropDatabase(name); err != nil {
			t.Errorf("storagetest: dropping %s: %v", name, err)
		}
	})
	return withDatabase(shared.adminURL, name)
}

// URL returns the connection string of a new database that has Ferry's
// schema migrated; it is dropped when the test ends. Creating one copies a
// template, so it costs milliseconds.
func URL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, true)
}

// EmptyURL is URL without the schema, for tests of migrations themselves.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, false)
}

// Pool returns a pool on a new migrated database (see URL), closed when the
// test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Replicated is a new migrated database on the throwaway primary and the
// same database seen through a streaming replica of that primary.
type Replicated struct {
	PrimaryURL string
	ReplicaURL string
	Replica    *Server
}

// NewReplicated creates a migrated database on the throwaway server, then a
// streaming replica of the server that applies WAL applyDelay late (0: as
// fast as it can). Both are removed when the test ends. Tests that use it
// run on the throwaway server even when EnvURL is set.
func NewReplicated(t testing.TB, applyDelay time.Duration) Replicated {
	t.Helper()
	ctx := context.Background()
	local, err := shared.localServer(ctx)
	if err != nil {
		unavailable(t, "PostgreSQL", err)
	}
	primaryURL := URL(t)
	if !strings.Contains(primaryURL, local.Dir()) {
		// URL went to the external server; make this database locally.
		name := fmt.Sprintf("ferry_repl_%d_%d", os.Getpid(), shared.count.Add(1))
		primaryURL = local.URL(name)
		if err := createMigrated(ctx, local, name); err != nil {
			t.Fatal(err)
		}
	}
	replica, err := local.StartReplica(ctx, applyDelay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Stop() })
	name := databaseOf(primaryURL)
	return Replicated{PrimaryURL: primaryURL, ReplicaURL: replica.URL(name), Replica: replica}
}

func createMigrated(ctx context.Context, s *Server, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, s.URL(name))
	if err != nil {
		return err
	}
	defer pool.Close()
	return storage.MigrateWith(ctx, storage.FromPool(pool), storage.MigrateOptions{Logger: slog.New(slog.DiscardHandler)})
}

// withDatabase returns connString pointing at database db; it understands
// both URL and key=value forms.
func withDatabase(connString, db string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		if u, err := url.Parse(connString); err == nil {
			u.Path = "/" + db
			return u.String()
		}
	}
	return connString + " dbname=" + db
}

func databaseOf(connString string) string {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return ""
	}
	return cfg.Database
}
