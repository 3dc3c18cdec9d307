package storagetest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage/storagetest"
)

const crashChildEnv = "FERRY_PGTEST_CRASH_CHILD"

// TestCrashedBinaryLeavesNothingBehind runs a child test binary that starts
// a server and then dies without cleaning up. Its postgres must die with it
// (Pdeathsig) and its temp dir is swept by the next Start.
func TestCrashedBinaryLeavesNothingBehind(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		s, err := storagetest.Start(context.Background(), storagetest.ServerOptions{})
		if err != nil {
			os.Exit(3)
		}
		b, _ := os.ReadFile(filepath.Join(s.Dir(), "data", "postmaster.pid"))
		pid, _, _ := strings.Cut(string(b), "\n")
		os.Stdout.WriteString("DIR=" + s.Dir() + " PID=" + pid + "\n")
		os.Exit(7) // dies without Stop
	}
	if _, err := storagetest.FindBinaries(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashedBinaryLeavesNothingBehind$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1")
	out, _ := cmd.Output()
	var dir string
	var pid int
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "DIR="); ok {
			dir = v
		}
		if v, ok := strings.CutPrefix(f, "PID="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	require.NotEmpty(t, dir, "child output: %s", out)
	require.Positive(t, pid)
	require.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil },
		10*time.Second, 20*time.Millisecond, "postgres of the dead binary must exit")

	s, err := storagetest.Start(context.Background(), storagetest.ServerOptions{})
	require.NoError(t, err)
	defer s.Stop()
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "the dead binary's temp dir must be swept, got %v", err)
}
