package bbm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
)

// The step boundaries of a job at which the kill test's child process
// SIGKILLs itself.
const (
	killBeforeClaim  = "before-claim"  // FindJob chose the job; nothing recorded yet
	killInsideWork   = "inside-work"   // the Work's UPDATE ran, its transaction is open
	killBeforeCommit = "before-commit" // the Work returned; its transaction is not committed
	killAfterCommit  = "after-commit"  // the Work's transaction committed
)

const (
	envKillURL  = "BBM_KILL_URL"
	envKillAt   = "BBM_KILL_AT"  // one of the boundaries, or empty to run to the end
	envKillJob  = "BBM_KILL_JOB" // kill at the boundary of this job (1-based, in this process)
	countedWork = "count"
)

func die() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }

// killer counts claimed jobs and dies at its boundary of its job.
type killer struct {
	at  string
	job int64
	n   atomic.Int64 // jobs claimed
}

func (k *killer) maybe(at string) {
	if k.at == at && k.n.Load() == k.job {
		die()
	}
}

// killStore is a Store that dies at the claim and commit boundaries.
type killStore struct {
	bbm.Store
	k *killer
}

func (s killStore) ClaimJob(ctx context.Context, c bbm.Claim) (*bbm.Job, error) {
	if s.k.at == killBeforeClaim && s.k.n.Load()+1 == s.k.job {
		die()
	}
	j, err := s.Store.ClaimJob(ctx, c)
	if err == nil {
		s.k.n.Add(1)
	}
	return j, err
}

// FinishJob dies after recording the job in the Work's transaction, before
// that commits.
func (s killStore) FinishJob(ctx context.Context, tx pgx.Tx, r bbm.JobResult) (*bbm.Job, error) {
	j, err := s.Store.FinishJob(ctx, tx, r)
	s.k.maybe(killBeforeCommit)
	return j, err
}

// countWork increments n: not idempotent, so a range applied twice shows.
func countWork(k *killer) bbm.Work {
	return bbm.WorkFunc(countedWork, func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		if _, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET n = n + 1 WHERE `+cond, args...); err != nil {
			return err
		}
		k.maybe(killInsideWork)
		return nil
	})
}

// TestBBMKillChild is the child process of TestExactlyOnceUnderKills.
func TestBBMKillChild(t *testing.T) {
	pool := childPool(t, envKillURL)
	ctx := context.Background()
	job, _ := strconv.ParseInt(os.Getenv(envKillJob), 10, 64)
	k := &killer{at: os.Getenv(envKillAt), job: job}
	opts := fastOptions()
	opts.JobTimeout, opts.JobLease = time.Second, 300*time.Millisecond
	opts.Store = killStore{Store: bbm.NewPostgresStore(pool, bbm.PostgresStoreOptions{}), k: k}
	// JobEnd is told after the job's outcome is committed.
	opts.Observer = bbm.ObserverFuncs{OnJobEnd: func(context.Context, bbm.JobEvent) { k.maybe(killAfterCommit) }}
	w := bbm.NewSyncWorker(pool, opts)
	require.NoError(t, w.Register(countWork(k)))
	require.NoError(t, w.Run(ctx))
}

// A child process running a non-idempotent Work (SET n = n + 1) is killed
// with SIGKILL at every step boundary of a job, three times each, and
// restarted each time; in the end every row was incremented exactly once.
func TestExactlyOnceUnderKills(t *testing.T) {
	pool, url := pgSetupURL(t)
	const rows, batch = 3000, 100
	countedTable(t, pool, rows)
	w := bbm.NewSyncWorker(pool, fastOptions())
	require.NoError(t, w.Register(countWork(&killer{})))
	register(t, w.Admin(), "count", "counted", countedWork, batch)

	child := func(at string, job int) error {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBBMKillChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), envKillURL+"="+url, envKillAt+"="+at, envKillJob+"="+strconv.Itoa(job), "CI=")
		out, err := cmd.CombinedOutput()
		if err != nil && at == "" {
			return fmt.Errorf("%w:\n%s", err, out)
		}
		return err
	}
	kills := 0
	for round := range 3 {
		for _, at := range []string{killBeforeClaim, killInsideWork, killBeforeCommit, killAfterCommit} {
			err := child(at, round+1)
			require.Error(t, err, "the child was not killed at %s of job %d", at, round+1)
			require.Contains(t, err.Error(), "killed", "child at %s", at)
			kills++
		}
	}
	require.NoError(t, child("", 0))
	require.Equal(t, bbm.StatusFinished, migrationOf(t, pool, "count").Status)
	twice := countWhere(t, pool, `SELECT count(*) FROM counted WHERE n > 1`)
	never := countWhere(t, pool, `SELECT count(*) FROM counted WHERE n = 0`)
	t.Logf("%d kills; %d job attempts for %d jobs", kills, countWhere(t, pool, `SELECT sum(attempts) FROM ferry_bbm_jobs`),
		countWhere(t, pool, `SELECT count(*) FROM ferry_bbm_jobs`))
	require.Zero(t, twice, "rows applied more than once")
	require.Zero(t, never, "rows never applied")
}
