package bbmcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmcmd"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// setup is a worker on bbmtest's store with two migrations: "fill" (1,000
// keys) and "broken" (a range that always fails).
func setup(t *testing.T) (*bbm.SyncWorker, *bytes.Buffer, bbmcmd.Options) {
	t.Helper()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store: bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog: bbmtest.NewCatalog(
			bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 1000},
			bbmtest.Table{Name: "other", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 300}),
		Logger:       slog.New(slog.DiscardHandler),
		Adaptive:     bbm.AdaptiveOptions{Off: true},
		RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond, Interval: time.Millisecond,
		MaxJobAttempts: 2,
	})
	noop := func(ctx context.Context, _ storage.Querier, b bbm.Batch) error { return ctx.Err() }
	require.NoError(t, w.Register(bbm.WorkFunc("fill", noop), bbm.WorkFunc("broken", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		if b.Start.Equal(bbm.IntKey(101)) {
			return errors.New("bad row 150")
		}
		return nil
	})))
	ctx := context.Background()
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "fill", BatchSize: 100})
	require.NoError(t, err)
	_, err = w.Admin().Register(ctx, bbm.Definition{Name: "broken", Table: "other", Column: "id", Work: "broken", BatchSize: 100})
	require.NoError(t, err)
	var out bytes.Buffer
	term := false
	return w, &out, bbmcmd.Options{Worker: w, Name: "registry bbm", Stdout: &out, Stderr: &out, Terminal: &term,
		PollInterval: 5 * time.Millisecond, LineInterval: time.Millisecond}
}

func TestStatusTableAndJSON(t *testing.T) {
	ctx := context.Background()
	w, out, o := setup(t)
	require.ErrorIs(t, w.RunMigrations(ctx, "broken"), bbm.ErrMigrationFailed)

	require.NoError(t, bbmcmd.Run(ctx, []string{"status"}, o))
	table := out.String()
	require.Contains(t, table, "NAME")
	// Before its first job, the total is the planner's estimate (~).
	require.Regexp(t, `fill\s+active\s+0\.0%\s+0/~1000\s+0\s+unknown\s+exactly_once\s+0`, table)
	require.Regexp(t, `broken\s+failed\s+66\.7%\s+200/300\s+\d+\s+unknown\s+exactly_once\s+1`, table)
	require.Regexp(t, `broken: job \d+ \[101, 200\] failed 2 times, last: job_failed: bad row 150`, table)
	require.Contains(t, table, "broken: max_job_attempts_reached: 1 ranges failed")

	out.Reset()
	require.NoError(t, bbmcmd.Run(ctx, []string{"status", "-json", "broken"}, o))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.Len(t, got, 1)
	require.Equal(t, "broken", got[0]["name"])
	require.Equal(t, "failed", got[0]["status"])
	require.Equal(t, 66.7, got[0]["progress_percent"])
	require.Equal(t, 300.0, got[0]["rows_total"])
	require.Equal(t, true, got[0]["rows_total_exact"])
	require.Equal(t, "exactly_once", got[0]["delivery"])
	jobs := got[0]["failed_jobs"].([]any)
	require.Len(t, jobs, 1)
	require.Equal(t, "bad row 150", jobs[0].(map[string]any)["error"])
	require.Equal(t, []any{"101"}, jobs[0].(map[string]any)["start"])

	require.ErrorIs(t, bbmcmd.Run(ctx, []string{"status", "nope"}, o), bbm.ErrMigrationNotFound)
}

func TestPauseResumeRetryRun(t *testing.T) {
	ctx := context.Background()
	w, out, o := setup(t)
	require.NoError(t, bbmcmd.Run(ctx, []string{"pause", "fill"}, o))
	require.Contains(t, out.String(), "fill: paused (paused)")
	require.ErrorIs(t, bbmcmd.Run(ctx, []string{"run", "fill"}, o), bbm.ErrInvalidTransition)
	require.NoError(t, bbmcmd.Run(ctx, []string{"resume", "fill"}, o))
	require.Contains(t, out.String(), "fill: resumed (active)")

	out.Reset()
	require.NoError(t, bbmcmd.Run(ctx, []string{"run", "fill"}, o))
	require.Contains(t, out.String(), "fill [##############################] 100.0% 1000/1000 rows")
	require.Regexp(t, `fill\s+finished\s+100\.0%`, out.String())
	p, err := w.Admin().Status(ctx, "broken")
	require.NoError(t, err)
	require.Equal(t, bbm.StatusActive, p.Migration.Status, "run NAME ran another migration")

	require.ErrorIs(t, bbmcmd.Run(ctx, []string{"run", "broken"}, o), bbm.ErrMigrationFailed)
	out.Reset()
	require.NoError(t, bbmcmd.Run(ctx, []string{"retry", "broken"}, o))
	require.Contains(t, out.String(), "broken: retrying (running)")
	require.ErrorIs(t, bbmcmd.Run(ctx, []string{"retry", "fill"}, o), bbm.ErrInvalidTransition)
}

func TestWaitAndRequire(t *testing.T) {
	ctx := context.Background()
	w, out, o := setup(t)
	err := bbmcmd.Run(ctx, []string{"require", "fill", "broken"}, o)
	require.ErrorIs(t, err, bbm.ErrNotFinished)
	require.ErrorContains(t, err, "(2 of 2)")
	require.ErrorContains(t, err, "fill: active 0.0%")
	require.ErrorContains(t, err, "ETA unknown")
	require.ErrorIs(t, bbmcmd.Run(ctx, []string{"wait", "-timeout", "30ms", "fill"}, o), bbmcmd.ErrTimeout)

	// Another process runs the migrations; wait follows them.
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.RunMigrations(ctx, "fill") })
	out.Reset()
	require.NoError(t, bbmcmd.Run(ctx, []string{"wait", "fill"}, o))
	wg.Wait()
	require.Contains(t, out.String(), "100.0%")
	require.NoError(t, bbmcmd.Run(ctx, []string{"require", "fill"}, o))
	require.Contains(t, out.String(), "all 1 migrations are finished")

	wg.Go(func() { _ = w.RunMigrations(ctx, "broken") })
	err = bbmcmd.Run(ctx, []string{"wait", "fill", "broken"}, o)
	wg.Wait()
	require.ErrorIs(t, err, bbm.ErrMigrationFailed)
	require.ErrorContains(t, err, `"broken"`)
}

func TestUsage(t *testing.T) {
	ctx := context.Background()
	_, out, o := setup(t)
	for _, args := range [][]string{{}, {"frobnicate"}, {"pause"}, {"wait", "-timeout", "soon", "fill"}, {"status", "-x"}} {
		out.Reset()
		err := bbmcmd.Run(ctx, args, o)
		require.ErrorIs(t, err, bbmcmd.ErrUsage, "%q", args)
		require.Contains(t, out.String(), "usage: registry bbm", "%q", args)
	}
	out.Reset()
	require.NoError(t, bbmcmd.Run(ctx, []string{"help"}, o))
	for _, c := range []string{"status", "pause", "resume", "retry", "run", "wait", "require"} {
		require.True(t, strings.Contains(out.String(), "  "+c+" "), "usage lacks %s", c)
	}
	require.Error(t, bbmcmd.Run(ctx, []string{"status"}, bbmcmd.Options{}))
}

// On a terminal, run redraws one progress line in place.
func TestRunDrawsABarOnATerminal(t *testing.T) {
	ctx := context.Background()
	w, out, o := setup(t)
	term := true
	o.Terminal = &term
	require.NoError(t, w.Register(bbm.WorkFunc("slow", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	})))
	_, err := w.Admin().Register(ctx, bbm.Definition{Name: "slow", Table: "items", Column: "id", Work: "slow", BatchSize: 50})
	require.NoError(t, err)
	require.NoError(t, bbmcmd.Run(ctx, []string{"run", "slow"}, o))
	require.Contains(t, out.String(), "\r\033[Kslow [")
	require.Greater(t, strings.Count(out.String(), "\r\033[K"), 1, "the bar was drawn once")
	require.Contains(t, out.String(), "slow [##############################] 100.0% 1000/1000 rows")
}
