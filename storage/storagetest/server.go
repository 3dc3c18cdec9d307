package storagetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/childproc"
)

// ErrUnavailable is returned when no PostgreSQL server can be started here;
// its message names what is missing.
var ErrUnavailable = errors.New("storagetest: cannot start a throwaway PostgreSQL server")

// Superuser is the database superuser of every server Start makes.
const Superuser = "postgres"

// dirPrefix names the temp dirs of servers; the pid after it lets a later
// run sweep what a crashed run left behind.
const dirPrefix = "ferry-pgtest-"

// ServerOptions tunes Start.
type ServerOptions struct {
	// Settings are extra postgres -c settings.
	Settings map[string]string
	// Durable runs the server with PostgreSQL's default durability (fsync,
	// synchronous_commit and full_page_writes on), for benchmarks whose
	// figures must hold on a real server. Default: off, which makes tests
	// fast and is safe for throwaway data.
	Durable bool
	// StartTimeout bounds how long Start waits for the server to accept
	// connections. Default 30s.
	StartTimeout time.Duration
}

// Server is a throwaway PostgreSQL server in a temp dir, reachable only on a
// unix socket in that dir, with trust auth and fsync off (unless Durable). It is stopped
// with Stop, and also (SIGQUIT) if the process that started it dies.
type Server struct {
	dir  string // temp dir: data/ and the socket
	data string
	bin  string
	cred *credential
	proc *childproc.Process
}

// Start runs initdb into a new temp dir and starts a server on it.
func Start(ctx context.Context, opts ServerOptions) (*Server, error) {
	if err := childproc.Supported(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	childproc.SweepStale(dirPrefix, filepath.Join("data", "postmaster.pid"))
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := childproc.TempDir(dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("storagetest: temp dir: %w", err)
	}
	s := &Server{dir: dir, data: filepath.Join(dir, "data"), bin: bin, cred: cred}
	if err := s.chown(); err != nil {
		s.removeDir()
		return nil, err
	}
	if err := s.initData(ctx); err != nil {
		s.removeDir()
		return nil, err
	}
	if err := s.launch(ctx, opts); err != nil {
		s.removeDir()
		return nil, err
	}
	return s, nil
}

// launch starts postgres on s.data and waits until it accepts connections.
func (s *Server) launch(ctx context.Context, opts ServerOptions) error {
	durability := "off"
	if opts.Durable {
		durability = "on"
	}
	args := []string{"-D", s.data, "-k", s.dir, "-p", "5432",
		"-c", "listen_addresses=", "-c", "fsync=" + durability, "-c", "synchronous_commit=" + durability,
		"-c", "full_page_writes=" + durability, "-c", "max_connections=300",
		"-c", "shared_buffers=128MB", "-c", "max_wal_size=2GB"}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+opts.Settings[k])
	}
	logFile, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return fmt.Errorf("storagetest: log file: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	asUser(cmd, s.cred)
	proc, err := childproc.Start(cmd, syscall.SIGQUIT)
	if err != nil {
		return fmt.Errorf("%w: starting postgres: %v", ErrUnavailable, err)
	}
	s.proc = proc
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	err = childproc.WaitReady(ctx, proc, timeout, 20*time.Millisecond, connects(s.URL("postgres")))
	if err != nil {
		_ = s.Stop()
		return fmt.Errorf("%w: postgres: %v\n%s", ErrUnavailable, err, childproc.Tail(s.log(), 15))
	}
	return nil
}

// connects is a readiness check (childproc.WaitReady) that passes once a
// client can connect to url.
func connects(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			_ = conn.Close(ctx)
		}
		return err
	}
}

// URL is a connection string for database db on this server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=%s dbname=%s sslmode=disable", s.dir, Superuser, db)
}

// Dir is the server's temp dir (data and socket).
func (s *Server) Dir() string { return s.dir }

// StartReplica makes a streaming replica of s with pg_basebackup -R and
// starts it. applyDelay, when positive, sets recovery_min_apply_delay so the
// replica lags behind for real.
func (s *Server) StartReplica(ctx context.Context, applyDelay time.Duration) (*Server, error) {
	dir, err := childproc.TempDir(dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("storagetest: temp dir: %w", err)
	}
	r := &Server{dir: dir, data: filepath.Join(dir, "data"), bin: s.bin, cred: s.cred}
	if err := r.chown(); err != nil {
		r.removeDir()
		return nil, err
	}
	if out, err := r.run(ctx, "pg_basebackup", "-D", r.data, "-R", "-X", "stream",
		"--checkpoint=fast", "--no-sync", "-h", s.dir, "-p", "5432", "-U", Superuser); err != nil {
		r.removeDir()
		return nil, fmt.Errorf("storagetest: pg_basebackup: %v\n%s", err, childproc.Tail(out, 15))
	}
	// The WAL receiver names itself after cluster_name: the primary's
	// pg_stat_replication tells this replica from others by it.
	settings := map[string]string{"hot_standby": "on", "cluster_name": filepath.Base(dir)}
	if applyDelay > 0 {
		settings["recovery_min_apply_delay"] = fmt.Sprintf("%dms", applyDelay.Milliseconds())
	}
	if err := r.launch(ctx, ServerOptions{Settings: settings}); err != nil {
		r.removeDir()
		return nil, err
	}
	if err := s.awaitStreaming(ctx, r, 30*time.Second); err != nil {
		_ = r.Stop()
		return nil, err
	}
	return r, nil
}

// awaitStreaming waits until s, the primary, lists replica r as streaming
// with a replay position. A replica that accepts connections may still be
// connecting: until then pg_stat_replication does not show it, so a test
// that starts work at once could finish before any lag shows (bbm's
// TestDefaultPacingBacksOffWhenReplicaLags did, once, on an idle machine:
// 20 jobs, no hold).
func (s *Server) awaitStreaming(ctx context.Context, r *Server, timeout time.Duration) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("storagetest: connecting to the primary: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	streaming := func(ctx context.Context) error {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_replication
			WHERE application_name = $1 AND state = 'streaming' AND replay_lsn IS NOT NULL)`, filepath.Base(r.dir)).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("not streaming yet")
		}
		return nil
	}
	if err := childproc.WaitReady(ctx, r.proc, timeout, 20*time.Millisecond, streaming); err != nil {
		return fmt.Errorf("storagetest: waiting for the replica to stream: %w\n%s", err, childproc.Tail(r.log(), 15))
	}
	return nil
}

// Stop shuts the server down (fast mode, then immediate after 10s) and
// removes its temp dir.
func (s *Server) Stop() error {
	if s.proc != nil {
		s.proc.Stop(syscall.SIGINT, 10*time.Second, syscall.SIGQUIT)
	}
	return s.removeDir()
}

func (s *Server) removeDir() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("storagetest: removing %s: %w", s.dir, err)
	}
	return nil
}

func (s *Server) log() []byte {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	return b
}

// run runs a PostgreSQL tool as the server's OS user.
func (s *Server) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, tool), args...)
	asUser(cmd, s.cred)
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

func (s *Server) chown() error {
	if err := chownTo(s.dir, s.cred); err != nil {
		return fmt.Errorf("storagetest: chown %s: %w", s.dir, err)
	}
	return nil
}

// FindBinaries returns the directory holding initdb and postgres: the
// newest /usr/lib/postgresql/*/bin, else the PATH's.
func FindBinaries() (string, error) {
	has := func(dir string) bool {
		for _, tool := range []string{"initdb", "postgres", "pg_basebackup"} {
			if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
				return false
			}
		}
		return true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	return "", fmt.Errorf("%w: no initdb/postgres/pg_basebackup in /usr/lib/postgresql/*/bin or PATH (apt-get install postgresql-15)", ErrUnavailable)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}
