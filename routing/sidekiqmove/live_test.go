package sidekiqmove

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/redistest"
)

// quietLogger drops go-redis's own log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// childEnv names the Redis socket when the test binary runs as the mover
// child of TestMoverKilledMidRunLosesNothing.
const childEnv = "FERRY_SIDEKIQMOVE_CHILD_REDIS"

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	if sock := os.Getenv(childEnv); sock != "" {
		os.Exit(runChildMover(sock))
	}
	os.Exit(m.Run())
}

// runChildMover moves liveMoves slowly, printing the jobs moved after every
// batch, until it is killed (or done).
func runChildMover(sock string) int {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	m, err := New(c, liveMoves, &Options{BatchSize: 50, Rate: 4000, Observer: printer()})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := m.Run(context.Background()); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("done")
	return 0
}

func printer() Observer {
	return ObserverFuncs{OnProgressed: func(_ context.Context, p Progress) { fmt.Println("moved", p.Moved) }}
}

// No job is lost or duplicated while clients push to old and new queues,
// servers pop from both, and the scheduler enqueues due jobs, all during the
// move; workers that stay are never touched.
func TestMoveUnderLiveTraffic(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	s := newLiveSidekiq(c)
	s.preload(ctx, t, 3000)

	trafficCtx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(trafficCtx)
	var producing atomic.Bool
	producing.Store(true)
	s.traffic(gctx, g, &producing)

	// Slowed down so that the move overlaps plenty of traffic.
	slow, err := New(c, liveMoves, &Options{BatchSize: 40, MaxPasses: 3, Rate: 4000})
	require.NoError(t, err)
	during, err := slow.Run(ctx)
	require.NoError(t, err)
	require.Positive(t, during.Moved())

	// Old clients are gone now (step 2 done): one more run finishes.
	s.stopProducing(&producing)
	m, err := New(c, liveMoves, nil)
	require.NoError(t, err)
	final, err := m.Run(ctx)
	require.NoError(t, err)
	require.True(t, final.Done, "%s", final)
	stop()
	require.NoError(t, g.Wait())
	assertOldQueuesHoldNoMovingJob(ctx, t, c)

	s.drain(ctx, t)
	jobs, movedJobs := s.check(t)
	require.Positive(t, movedJobs)
	t.Logf("live traffic: %d jobs produced and consumed exactly once, %d consumed after a move (mover: %d + %d moved, %d gone to servers first)",
		jobs, movedJobs, during.Moved(), final.Moved(), gone(during)+gone(final))
}

func gone(r *Report) int {
	n := 0
	for _, s := range r.Sources {
		n += s.Gone
	}
	return n
}

// A mover killed with SIGKILL mid-run loses nothing, and a second run
// finishes the work, with live traffic all along.
func TestMoverKilledMidRunLosesNothing(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	c := redis.NewClient(srv.Options())
	t.Cleanup(func() { _ = c.Close() })
	s := newLiveSidekiq(c)
	s.preload(ctx, t, 5000) // 10,000 jobs to move at 4,000/s in the child

	trafficCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(trafficCtx)
	var producing atomic.Bool
	producing.Store(true)
	s.traffic(gctx, g, &producing)

	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+srv.Addr())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	movedByChild := 0
	lines := bufio.NewScanner(out)
	for movedByChild < 2000 && lines.Scan() {
		line := lines.Text()
		require.False(t, strings.HasPrefix(line, "error") || line == "done", "child: %s", line)
		if n, ok := strings.CutPrefix(line, "moved "); ok {
			movedByChild, _ = strconv.Atoi(n)
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	require.ErrorContains(t, err, "killed", "the child was still running")

	// A second run (this process) finishes while traffic goes on, then the
	// last one after old clients stopped.
	m, err := New(c, liveMoves, &Options{BatchSize: 100, MaxPasses: 3})
	require.NoError(t, err)
	rerun, err := m.Run(ctx)
	require.NoError(t, err)
	require.Positive(t, rerun.Moved(), "the child left work to finish")
	s.stopProducing(&producing)
	final, err := m.Run(ctx)
	require.NoError(t, err)
	require.True(t, final.Done)
	stop()
	require.NoError(t, g.Wait())
	assertOldQueuesHoldNoMovingJob(ctx, t, c)

	s.drain(ctx, t)
	jobs, movedJobs := s.check(t)
	t.Logf("kill -9 after the child reported %d moved; re-run moved %d, final %d; %d jobs consumed exactly once, %d after a move",
		movedByChild, rerun.Moved(), final.Moved(), jobs, movedJobs)
}
