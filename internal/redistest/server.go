package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/childproc"
)

// ErrUnavailable is returned when no redis-server can be started here; its
// message says what is missing.
var ErrUnavailable = errors.New("redistest: cannot start a throwaway redis-server")

// dirPrefix names the servers' temp dirs; the pid after it lets a later
// run sweep what a crashed run left behind.
const dirPrefix = "ferry-redistest-"

// Server is a throwaway redis-server on a unix socket in a temp dir.
type Server struct {
	bin  string
	dir  string
	sock string

	proc *childproc.Process
}

// New starts a server for t and stops it when t ends. Under CI=true a
// missing redis-server fails t; elsewhere t is skipped with the reason.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background())
	if err != nil {
		if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("redis-server is required under CI=true: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return s
}

// Start starts a server; Stop stops it and removes its dir.
func Start(ctx context.Context) (*Server, error) {
	if err := childproc.Supported(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: no redis-server in PATH (apt-get install redis-server)", ErrUnavailable)
	}
	childproc.SweepStale(dirPrefix, "redis.pid")
	dir, err := childproc.TempDir(dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("redistest: temp dir: %w", err)
	}
	s := &Server{bin: bin, dir: dir, sock: filepath.Join(dir, "redis.sock")}
	if err := s.launch(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Network is "unix"; see Addr.
func (s *Server) Network() string { return "unix" }

// Addr is the path of the server's unix socket.
func (s *Server) Addr() string { return s.sock }

// Options are go-redis client options for this server.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Network: s.Network(), Addr: s.Addr()}
}

// Restart stops the server, keeps it down for downtime, and starts it
// again on the same socket and data, which the append-only file keeps
// (keys whose expiry passed meanwhile are gone). Clients see their
// connections drop and, while it is down, cannot connect.
func (s *Server) Restart(ctx context.Context, downtime time.Duration) error {
	if err := s.shutdown(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(downtime):
	}
	return s.launch(ctx)
}

// Signal sends sig to the server process: syscall.SIGSTOP makes it hang
// (connections stay open, nothing answers) until syscall.SIGCONT.
func (s *Server) Signal(sig os.Signal) error {
	if s.proc == nil {
		return fmt.Errorf("redistest: the server is not running")
	}
	return s.proc.Signal(sig)
}

// Stop stops the server and removes its dir.
func (s *Server) Stop() error {
	err := s.shutdown()
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = fmt.Errorf("redistest: removing %s: %w", s.dir, rerr)
	}
	return err
}

func (s *Server) launch(ctx context.Context) error {
	args := []string{
		"--port", "0", // no TCP
		"--unixsocket", s.sock, "--unixsocketperm", "700",
		"--dir", s.dir, "--pidfile", filepath.Join(s.dir, "redis.pid"),
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no", "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec",
	}
	cmd := exec.Command(s.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	proc, err := childproc.Start(cmd, syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("%w: starting redis-server: %v", ErrUnavailable, err)
	}
	s.proc = proc
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, MaxRetries: -1})
	defer client.Close()
	err = childproc.WaitReady(ctx, proc, 10*time.Second, 10*time.Millisecond, func(ctx context.Context) error {
		return client.Ping(ctx).Err()
	})
	if err != nil {
		_ = s.shutdown()
		return fmt.Errorf("%w: redis-server: %v %s\n%s", ErrUnavailable, err, strings.TrimSpace(out.String()), s.logTail())
	}
	return nil
}

// shutdown stops the process: SIGTERM (which flushes the append-only
// file), then SIGKILL after 10s.
func (s *Server) shutdown() error {
	if s.proc == nil {
		return nil
	}
	s.proc.Stop(syscall.SIGTERM, 10*time.Second, syscall.SIGKILL)
	s.proc = nil
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return childproc.Tail(b, 10)
}
