package childproc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/internal/childproc"
)

func TestStartWaitReadyStop(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ready")
	p, err := childproc.Start(exec.Command("sh", "-c", "sleep 0.1; touch "+marker+"; exec sleep 60"), syscall.SIGKILL)
	require.NoError(t, err)
	err = childproc.WaitReady(context.Background(), p, 10*time.Second, 10*time.Millisecond, func(context.Context) error {
		_, err := os.Stat(marker)
		return err
	})
	require.NoError(t, err)
	p.Stop(syscall.SIGTERM, 5*time.Second, syscall.SIGKILL)
	<-p.Exited()
	require.False(t, childproc.Alive(p.Pid()))
}

func TestWaitReadyReportsEarlyExit(t *testing.T) {
	p, err := childproc.Start(exec.Command("sh", "-c", "exit 3"), syscall.SIGKILL)
	require.NoError(t, err)
	err = childproc.WaitReady(context.Background(), p, 10*time.Second, 10*time.Millisecond, func(context.Context) error {
		return errors.New("not yet")
	})
	require.ErrorIs(t, err, childproc.ErrExited)
	require.ErrorContains(t, err, "exit status 3")
}

func TestSweepStaleRemovesDeadOwnersDirs(t *testing.T) {
	// A dir named for a pid that cannot exist, and one of ours.
	dead := filepath.Join(os.TempDir(), "ferry-childproc-test-2147483646-x")
	require.NoError(t, os.MkdirAll(dead, 0o755))
	ours, err := childproc.TempDir("ferry-childproc-test-")
	require.NoError(t, err)
	defer os.RemoveAll(ours)
	childproc.SweepStale("ferry-childproc-test-", "")
	_, err = os.Stat(dead)
	require.True(t, os.IsNotExist(err))
	_, err = os.Stat(ours)
	require.NoError(t, err)
}

// A stale dir's pid file may name a pid the system has since given to
// another process: that one is left alone, the dir still removed.
func TestSweepStaleKillsOnlyItsOwnServer(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("no /proc: the sweep cannot tell a reused pid")
	}
	other := exec.Command("sleep", "30")
	require.NoError(t, other.Start())
	exited := make(chan struct{})
	go func() { _ = other.Wait(); close(exited) }()
	defer func() { _ = other.Process.Kill(); <-exited }()
	dead := filepath.Join(os.TempDir(), "ferry-childproc-test-2147483645-y")
	require.NoError(t, os.MkdirAll(dead, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dead, "server.pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o644))
	childproc.SweepStale("ferry-childproc-test-", "server.pid")
	_, err := os.Stat(dead)
	require.True(t, os.IsNotExist(err), "the stale dir is removed")
	select {
	case <-exited:
		t.Fatal("a process that merely has the pid was killed")
	case <-time.After(200 * time.Millisecond):
	}
}

func ExampleTail() {
	fmt.Println(childproc.Tail([]byte("a\nb\nc\n"), 2))
	// Output:
	// b
	// c
}
