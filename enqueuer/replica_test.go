package enqueuer_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// replicaDelay is long enough that a check right after the work still finds
// the replica behind on a loaded machine (500 ms left little room).
const replicaDelay = time.Second

// lagging is a database with a replica that applies WAL replicaDelay late,
// seen from two processes: the worker, which writes on the primary, and the
// notification handler's process, which also has the replica.
type lagging struct {
	worker, handler *enqueuer.PostgresStore
	handlerDB       *storage.DB
	replica         *pgx.Conn
}

func newLagging(t *testing.T) *lagging {
	t.Helper()
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, replicaDelay)
	workerDB, err := storage.Open(ctx, storage.Config{PrimaryURL: rep.PrimaryURL, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(workerDB.Close)
	handlerDB, err := storage.Open(ctx, storage.Config{
		PrimaryURL: rep.PrimaryURL, ReplicaURLs: []string{rep.ReplicaURL},
		ReplicaCheckInterval: 20 * time.Millisecond, Logger: quiet,
	})
	require.NoError(t, err)
	t.Cleanup(handlerDB.Close)
	replica, err := pgx.Connect(ctx, rep.ReplicaURL)
	require.NoError(t, err)
	t.Cleanup(func() { replica.Close(context.Background()) })
	return &lagging{
		worker: newPostgresStore(t, workerDB), handler: newPostgresStore(t, handlerDB),
		handlerDB: handlerDB, replica: replica,
	}
}

// replicaStates counts states as the replica sees them right now.
func (l *lagging) replicaStates(t *testing.T) map[string]int {
	t.Helper()
	rows, err := l.replica.Query(context.Background(), `SELECT state, count(*) FROM ferry_enqueuer_repositories GROUP BY state`)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(t, rows.Scan(&s, &n))
		out[s] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// waitReplica waits until the replica shows n repositories in state.
func (l *lagging) waitReplica(t *testing.T, state string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return l.replicaStates(t)[state] == n }, 30*time.Second, 50*time.Millisecond)
}

// notifyAfterEachChange moves each repository through its migration from
// the worker's side and has the registry's notification arrive right after
// each change, as fast as the registry can send it. It returns the answers'
// codes and messages.
func notifyAfterEachChange(t *testing.T, l *lagging, n *notifier, repos []enqueuer.Repository) (ok, wrongState int) {
	t.Helper()
	ctx := context.Background()
	count := func(a answer) {
		switch {
		case a.code == http.StatusOK:
			ok++
		case a.code == http.StatusBadRequest && strings.HasPrefix(a.body["message"].(string), "wrong migration state"):
			wrongState++
		default:
			t.Fatalf("unexpected answer %d %v", a.code, a.body)
		}
	}
	for _, r := range repos {
		r, err := l.worker.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: enqueuer.EventStartPreImport})
		require.NoError(t, err)
		count(n.notify(t, r.Path, enqueuer.NotifyPreImportComplete))
		// The worker reads its own write back from the primary.
		r, err = l.worker.Get(storage.UsePrimary(ctx), r.Path)
		require.NoError(t, err)
		if r.State != enqueuer.StatePreImportDone {
			continue // the handler refused: the import cannot go on
		}
		_, err = l.worker.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventStartImport})
		require.NoError(t, err)
		count(n.notify(t, r.Path, enqueuer.NotifyImportComplete))
	}
	return ok, wrongState
}

// Seed 002: with a replica a second behind, 200 notifications that arrive
// right after the state changed never see "wrong migration state".
func TestHandlerUnderReplicaLagReadsPrimary(t *testing.T) {
	const repos = 100
	l := newLagging(t)
	rs := addNew(t, l.worker, "gitlab-org/image", repos)
	l.waitReplica(t, "default", repos)

	n := newNotifier(t, l.handler)
	ok, wrong := notifyAfterEachChange(t, l, n, rs)
	require.Zero(t, wrong, "no notification may see a stale state")
	require.Equal(t, 2*repos, ok)
	require.EqualValues(t, 2*repos, n.changes.Load())

	done, err := l.worker.List(storage.UsePrimary(context.Background()), enqueuer.ListOptions{State: enqueuer.StateImportDone, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, done, repos)
	// The lag was real: the replica has not caught up with the last changes.
	require.Less(t, l.replicaStates(t)["import_done"], repos, "the replica must lag for this test to mean anything")
}

// replicaReads is the handler of seed 002 before its fix: its reads go
// wherever storage routes them, as if it had not asked for the primary.
type replicaReads struct{ enqueuer.Store }

func (s replicaReads) Get(ctx context.Context, path string) (enqueuer.Repository, error) {
	return s.Store.Get(context.Background(), path) // drops storage.UsePrimary
}

// The same notifications through a handler that reads the replica fail
// the way the seed's did: "wrong migration state (default)".
func TestHandlerReadingReplicaWouldFail(t *testing.T) {
	const repos = 20
	l := newLagging(t)
	rs := addNew(t, l.worker, "gitlab-org/image", repos)
	l.waitReplica(t, "default", repos)

	n := newNotifier(t, replicaReads{l.handler})
	_, wrong := notifyAfterEachChange(t, l, n, rs)
	t.Logf("replica-reading handler: %d of %d first notifications answered \"wrong migration state (default)\"", wrong, repos)
	require.Positive(t, wrong, "a replica-reading handler must have failed")
}

// The enqueuer counts capacity on the primary: two runs right after each
// other do not both fill it from a replica that still shows it empty.
func TestEnqueuerUnderReplicaLagReadsPrimary(t *testing.T) {
	ctx := context.Background()
	l := newLagging(t)
	addNew(t, l.worker, "g/r", 30)
	l.waitReplica(t, "default", 30)
	e := newEnv(t, l.handler, enqueuertest.RegistryOptions{})
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Locker: postgresLocker(t, l.handlerDB)})
	for range 3 {
		_, err := enq.Run(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 10, counts(t, l.worker)[enqueuer.StatePreImporting])
	require.Equal(t, 10, e.reg.Calls(enqueuertest.OpPreImport, ""))
	require.Less(t, l.replicaStates(t)["pre_importing"], 10, "the replica must lag for this test to mean anything")
}
