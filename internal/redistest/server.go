package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

	proc    *os.Process
	exited  chan struct{}
	waitErr error
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
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: no redis-server in PATH (apt-get install redis-server)", ErrUnavailable)
	}
	sweepStale()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
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
	s.exited = make(chan struct{})
	started := make(chan error, 1)
	// Pdeathsig fires when the thread that forked the child exits, so the
	// child is forked from a goroutine locked to its thread for as long as
	// the server lives.
	go func() {
		runtime.LockOSThread()
		cmd := exec.Command(s.bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		s.proc = cmd.Process
		started <- nil
		s.waitErr = cmd.Wait()
		if out.Len() > 0 && s.waitErr != nil {
			s.waitErr = fmt.Errorf("%w: %s", s.waitErr, strings.TrimSpace(out.String()))
		}
		close(s.exited)
		// The thread stays locked and is discarded, as Pdeathsig requires.
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("%w: starting redis-server: %v", ErrUnavailable, err)
	}
	if err := s.waitReady(ctx, 10*time.Second); err != nil {
		_ = s.shutdown()
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(timeout)
	for {
		err := client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%w: redis-server exited: %v\n%s", ErrUnavailable, s.waitErr, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: redis-server not ready after %s: %v\n%s", ErrUnavailable, timeout, err, s.logTail())
		}
	}
}

// shutdown stops the process: SIGTERM (which flushes the append-only
// file), then SIGKILL after 10s.
func (s *Server) shutdown() error {
	if s.proc == nil {
		return nil
	}
	_ = s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.proc.Kill()
		<-s.exited
	}
	s.proc = nil
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

// sweepStale removes the dirs (and stops the servers) of test processes
// that died without cleaning up.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), dirPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "redis.pid")); err == nil {
			if srv, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(srv) {
				_ = syscall.Kill(srv, syscall.SIGKILL)
			}
		}
		_ = os.RemoveAll(d)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
