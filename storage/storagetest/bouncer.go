package storagetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/internal/childproc"
)

// ErrNoBouncer is returned when no PgBouncer can be started here; its
// message says what is missing.
var ErrNoBouncer = errors.New("storagetest: cannot start a throwaway PgBouncer")

// bouncerDirPrefix names the bouncers' temp dirs (see childproc.SweepStale).
const bouncerDirPrefix = "ferry-pgbouncer-"

// bouncerPort is the port in the name of the bouncer's unix socket; it
// listens on no TCP port.
const bouncerPort = 6432

// Bouncer is a throwaway PgBouncer in transaction-pooling mode
// (pool_mode=transaction) in front of a PostgreSQL server: every database
// of the server is reachable through it under its own name, and each
// transaction may run on a different server connection, as behind a
// production PgBouncer. Session state (SET, session advisory locks,
// LISTEN, server-side prepared statements) does not survive from one
// transaction to the next.
type Bouncer struct {
	dir  string
	proc *childproc.Process
	// stopping is set by Stop: an exit before it is reported (watch).
	stopping atomic.Bool
}

// StartBouncer starts a PgBouncer in front of the server that serverURL
// (any database on it) points at, connecting as serverURL's user. It runs
// as the postgres OS user when running as root (PgBouncer refuses root).
// Stop stops it.
func StartBouncer(ctx context.Context, serverURL string) (*Bouncer, error) {
	if err := childproc.Supported(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBouncer, err)
	}
	bin, err := findBouncer()
	if err != nil {
		return nil, err
	}
	target, err := bouncerTarget(serverURL)
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBouncer, err)
	}
	childproc.SweepStale(bouncerDirPrefix, "pgbouncer.pid")
	dir, err := childproc.TempDir(bouncerDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("storagetest: temp dir: %w", err)
	}
	b := &Bouncer{dir: dir}
	if err := b.launch(ctx, bin, target, cred); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// findBouncer finds the pgbouncer binary: the PATH's, else Debian's.
func findBouncer() (string, error) {
	if bin, err := exec.LookPath("pgbouncer"); err == nil {
		return bin, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", fmt.Errorf("%w: no pgbouncer in PATH or /usr/sbin (apt-get install pgbouncer)", ErrNoBouncer)
}

// bouncerTarget is the [databases] entry that sends every database name to
// the same-named database on serverURL's server.
func bouncerTarget(serverURL string) (string, error) {
	cfg, err := pgconn.ParseConfig(serverURL)
	if err != nil {
		return "", fmt.Errorf("storagetest: bouncer target %q: %w", serverURL, err)
	}
	entry := fmt.Sprintf("host=%s port=%d user=%s", quoteBouncer(cfg.Host), cfg.Port, quoteBouncer(cfg.User))
	if cfg.Password != "" {
		entry += " password=" + quoteBouncer(cfg.Password)
	}
	return entry, nil
}

// quoteBouncer quotes a value of a PgBouncer connection string.
func quoteBouncer(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

func (b *Bouncer) launch(ctx context.Context, bin, target string, cred *credential) error {
	ini := filepath.Join(b.dir, "pgbouncer.ini")
	conf := fmt.Sprintf(`[databases]
* = %s

[pgbouncer]
listen_addr =
listen_port = %d
unix_socket_dir = %s
auth_type = any
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, target, bouncerPort, b.dir, filepath.Join(b.dir, "pgbouncer.log"), filepath.Join(b.dir, "pgbouncer.pid"))
	if err := os.WriteFile(ini, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("storagetest: writing %s: %w", ini, err)
	}
	for _, p := range []string{b.dir, ini} {
		if err := chownTo(p, cred); err != nil {
			return fmt.Errorf("storagetest: chown %s: %w", p, err)
		}
	}
	cmd := exec.Command(bin, ini)
	out, err := os.Create(filepath.Join(b.dir, "pgbouncer.out"))
	if err != nil {
		return fmt.Errorf("storagetest: bouncer output: %w", err)
	}
	defer out.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = out, out
	asUser(cmd, cred)
	proc, err := childproc.Start(cmd, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("%w: starting pgbouncer: %v", ErrNoBouncer, err)
	}
	b.proc = proc
	// Ready when a client gets through to the server: "postgres" exists
	// on every server.
	err = childproc.WaitReady(ctx, proc, 30*time.Second, 20*time.Millisecond, connects(b.URL("postgres")))
	if err != nil {
		b.Stop()
		return fmt.Errorf("%w: pgbouncer: %v\n%s", ErrNoBouncer, err, childproc.Tail(b.log(), 15))
	}
	go b.watch()
	return nil
}

// watch reports on stderr a bouncer that exits before Stop, with its log:
// its clients then fail with a missing socket, and the log says why.
func (b *Bouncer) watch() {
	<-b.proc.Exited()
	if !b.stopping.Load() {
		fmt.Fprintf(os.Stderr, "storagetest: pgbouncer in %s exited before Stop (%v); its log:\n%s\n",
			b.dir, b.proc.Err(), childproc.Tail(b.log(), 20))
	}
}

// URL is a connection string for database db through the bouncer. Its
// default_query_exec_mode is exec: pgx's default (cache_statement) prepares
// statements on one server connection and runs them on whichever the next
// transaction gets, which PgBouncer before 1.21 does not support. A host
// behind such a PgBouncer picks exec, cache_describe or simple_protocol.
func (b *Bouncer) URL(db string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s sslmode=disable default_query_exec_mode=exec", b.dir, bouncerPort, db)
}

// Stop stops the bouncer (its clients' connections drop) and removes its
// temp dir.
func (b *Bouncer) Stop() {
	b.stopping.Store(true)
	if b.proc != nil {
		// SIGTERM: immediate shutdown; SIGINT would wait for clients.
		b.proc.Stop(syscall.SIGTERM, 5*time.Second, syscall.SIGKILL)
	}
	_ = os.RemoveAll(b.dir)
}

func (b *Bouncer) log() []byte {
	log, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	out, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.out"))
	return append(log, out...)
}

// BouncerURL returns the connection string of a new migrated database (see
// URL) reached through the test binary's PgBouncer in transaction-pooling
// mode (see Bouncer), started on first use and stopped by Main. Under
// CI=true a missing pgbouncer fails the test; elsewhere it is skipped with
// the reason.
func BouncerURL(t testing.TB) string {
	t.Helper()
	return ThroughBouncer(t, URL(t))
}

// ThroughBouncer returns dbURL's database reached through the test binary's
// PgBouncer (see BouncerURL). dbURL must be a database this package made
// (URL, EmptyURL).
func ThroughBouncer(t testing.TB, dbURL string) string {
	t.Helper()
	b, err := shared.bouncer(context.Background())
	if err != nil {
		unavailable(t, "PgBouncer", err)
	}
	return b.URL(databaseOf(dbURL))
}

// bouncer starts the shared PgBouncer in front of the shared server on
// first use.
func (h *harness) bouncer(ctx context.Context) (*Bouncer, error) {
	if err := h.ensure(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bouncerStarted {
		return h.pgbouncer, h.bouncerErr
	}
	h.bouncerStarted = true
	h.pgbouncer, h.bouncerErr = StartBouncer(ctx, h.adminURL)
	return h.pgbouncer, h.bouncerErr
}
