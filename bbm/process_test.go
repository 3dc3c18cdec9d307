package bbm_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// Environment of a child process: the re-executed test binary runs
// TestBBMChild, which connects to BBM_CHILD_URL itself (no pgtest).
const (
	envChildURL   = "BBM_CHILD_URL"
	envChildSleep = "BBM_CHILD_SLEEP" // seconds each job sleeps in the database
)

// loggedWork fills a batch and records, in the same transaction, who ran it
// and when (the database's clock, so processes can be compared).
func loggedWork(sleep string) bbm.Work {
	return bbm.WorkFunc("logged", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		var began time.Time
		if err := db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&began); err != nil {
			return err
		}
		if _, err := db.Exec(ctx, `SELECT pg_sleep($1::float8)`, sleep); err != nil {
			return err
		}
		if err := fillWork("x").Do(ctx, db, b); err != nil {
			return err
		}
		_, err := db.Exec(ctx, `INSERT INTO runlog (pid, start_key, began, ended) VALUES ($1, $2, $3, clock_timestamp())`,
			os.Getpid(), keyInt(b.Start), began)
		return err
	})
}

// TestBBMChild is the child process of the tests below; it does nothing in
// a normal test run.
func TestBBMChild(t *testing.T) {
	pool := childPool(t, envChildURL)
	ctx := context.Background()
	opts := fastOptions()
	opts.BatchPause = 10 * time.Millisecond
	opts.JobTimeout, opts.JobLease = time.Second, 300*time.Millisecond
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(loggedWork(os.Getenv(envChildSleep))))
	require.NoError(t, w.Run(ctx))
}

func childCmd(t *testing.T, url, sleep string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBBMChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envChildURL+"="+url, envChildSleep+"="+sleep, "CI=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// setupLogged makes a table of n rows, the run log, and a migration of it.
func setupLogged(t *testing.T, pool storage.Handle, n, batch int) {
	t.Helper()
	itemsTable(t, pool, "items", n)
	_, err := pool.Exec(context.Background(), `CREATE TABLE runlog (pid int, start_key bigint, began timestamptz, ended timestamptz)`)
	require.NoError(t, err)
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(loggedWork("0")))
	register(t, w.Admin(), "m", "items", "logged", batch)
}

// requireDone checks the end state: migration finished, every row filled,
// no job left running or failed, and no two jobs ran at the same time.
func requireDone(t *testing.T, pool storage.Handle, jobs int) {
	t.Helper()
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "m").Status)
	requireFilled(t, pool, "items")
	got := jobsOf(t, pool, "m")
	require.Len(t, got, jobs)
	for _, j := range got {
		require.Equal(t, bbm.JobFinished, j.Status, "job %d", j.ID)
	}
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM runlog a JOIN runlog b
		ON a.ctid < b.ctid AND tstzrange(a.began, a.ended) && tstzrange(b.began, b.ended)`), "two jobs overlapped in time")
	require.Equal(t, jobs, countWhere(t, pool, `SELECT count(DISTINCT start_key) FROM runlog`))
}

// Two OS processes run sync workers on one migration at once: one runs jobs
// at a time (the committed run log has no overlapping intervals), every
// job runs once and finishes.
func TestTwoProcesses(t *testing.T) {
	pool, url := pgSetupURL(t)
	twoProcesses(t, pool, url)
}

// TestTwoProcesses through PgBouncer in transaction-pooling mode: each
// process's pool shares the bouncer's server connections, so nothing may
// rely on a session (bbm's claims take transaction-scoped locks only).
func TestTwoProcessesThroughPgBouncer(t *testing.T) {
	pool, url := pgSetupURL(t)
	twoProcesses(t, pool, storagetest.ThroughBouncer(t, url))
}

func twoProcesses(t *testing.T, pool storage.Handle, url string) {
	setupLogged(t, pool, 4000, 100)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 2 {
		cmd, out := childCmd(t, url, "0.005")
		require.NoError(t, cmd.Start())
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "child %d:\n%s", i, outs[i])
	}
	requireDone(t, pool, 40)
	require.Equal(t, 40, countWhere(t, pool, `SELECT count(*) FROM runlog`), "a range ran twice")
	t.Logf("jobs per process: %v", perProcess(t, pool))
}

func perProcess(t *testing.T, pool storage.Handle) map[int]int {
	rows, err := pool.Query(context.Background(), `SELECT pid, count(*) FROM runlog GROUP BY pid`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var pid, n int
		require.NoError(t, rows.Scan(&pid, &n))
		out[pid] = n
	}
	return out
}

// A child process backfilling a table is killed with SIGKILL at random
// points, at least 5 times, and restarted; in the end the migration is
// finished, every row processed, no job stuck running.
func TestCrashRecovery(t *testing.T) {
	pool, url := pgSetupURL(t)
	const rows, batch = 50_000, 500
	setupLogged(t, pool, rows, batch)
	kills := 0
	for kills < 5 {
		cmd, out := childCmd(t, url, "0.03")
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			require.NoError(t, err, "child exited early:\n%s", out)
			t.Fatalf("the child finished before it was killed %d times; make the table bigger", kills)
		case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			<-exited
			kills++
		}
		t.Logf("kill %d: %s", kills, progress(t, pool))
	}
	cmd, out := childCmd(t, url, "0.03")
	require.NoError(t, cmd.Run(), "restarted child:\n%s", out)
	requireDone(t, pool, rows/batch)
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM ferry_bbm_jobs WHERE status = 'running'`))
	t.Logf("after %d kills: %d job attempts for %d jobs; %d ranges ran more than once (killed after commit, before being recorded)",
		kills, countWhere(t, pool, `SELECT sum(attempts) FROM ferry_bbm_jobs`), rows/batch,
		countWhere(t, pool, `SELECT count(*) FROM (SELECT start_key FROM runlog GROUP BY 1 HAVING count(*) > 1) s`))
}

func progress(t *testing.T, pool storage.Handle) string {
	return fmt.Sprintf("%s rows filled, %s jobs running", strconv.Itoa(countWhere(t, pool, `SELECT count(*) FROM items WHERE filled IS NOT NULL`)),
		strconv.Itoa(countWhere(t, pool, `SELECT count(*) FROM ferry_bbm_jobs WHERE status = 'running'`)))
}
