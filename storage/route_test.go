package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func openReplicated(t testing.TB, delay time.Duration) (*storage.DB, storagetest.Replicated) {
	t.Helper()
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, delay)
	db, err := storage.Open(ctx, storage.Config{
		PrimaryURL: rep.PrimaryURL, ReplicaURLs: []string{rep.ReplicaURL},
		ReplicaCheckInterval: 50 * time.Millisecond, Logger: quiet,
	})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	_, err = db.Exec(ctx, `CREATE TABLE repos (path text PRIMARY KEY, state text NOT NULL)`)
	require.NoError(t, err)
	return db, rep
}

// waitReplicated waits until the replica has replayed everything so far.
func waitReplicated(t testing.TB, db *storage.DB) {
	t.Helper()
	require.NoError(t, db.RecordWrite(context.Background(), "sync"))
	require.Eventually(t, func() bool {
		_, target := db.Choose(context.Background(), "sync")
		return target == storage.TargetReplica
	}, 20*time.Second, 20*time.Millisecond)
}

func TestReadYourWritesWithLaggingReplica(t *testing.T) {
	ctx := context.Background()
	db, rep := openReplicated(t, 500*time.Millisecond)
	const repos = 5
	for i := range repos {
		_, err := db.Exec(ctx, `INSERT INTO repos VALUES ($1, 'default')`, fmt.Sprintf("group/repo-%d", i))
		require.NoError(t, err)
	}
	waitReplicated(t, db)

	replica, err := pgx.Connect(ctx, rep.ReplicaURL)
	require.NoError(t, err)
	defer replica.Close(ctx)

	staleDirect, replicaReads := 0, 0
	states := []string{"pre_importing", "pre_import_done", "importing", "import_done"}
	for round, state := range states {
		for i := range repos {
			path := fmt.Sprintf("group/repo-%d", i)
			require.NoError(t, db.WriteTx(ctx, path, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE repos SET state = $2 WHERE path = $1`, path, state)
				return err
			}))
			// A plain replica read right after the write sees the old state...
			var direct string
			require.NoError(t, replica.QueryRow(ctx, `SELECT state FROM repos WHERE path = $1`, path).Scan(&direct))
			if direct != state {
				staleDirect++
			}
			// ...a routed read never does.
			q, target := db.Choose(ctx, path)
			var got string
			require.NoError(t, q.QueryRow(ctx, `SELECT state FROM repos WHERE path = $1`, path).Scan(&got))
			require.Equal(t, state, got, "round %d %s read from %s", round, path, target)
			if target == storage.TargetReplica {
				replicaReads++
			}
		}
	}
	require.Positive(t, staleDirect, "the replica must really lag for this test to mean anything")

	// Once the replica has caught up, reads for those keys go to it again.
	waitReplicated(t, db)
	_, target := db.Choose(ctx, "group/repo-0")
	require.Equal(t, storage.TargetReplica, target)
	t.Logf("direct replica reads that were stale: %d of %d; routed reads served by the replica: %d", staleDirect, repos*len(states), replicaReads)
}

func TestUsePrimaryForcesPrimary(t *testing.T) {
	ctx := context.Background()
	db, _ := openReplicated(t, 0)
	waitReplicated(t, db)
	_, target := db.Choose(ctx, "")
	require.Equal(t, storage.TargetReplica, target)
	_, target = db.Choose(storage.UsePrimary(ctx), "")
	require.Equal(t, storage.TargetPrimary, target)
	require.True(t, storage.UsesPrimary(storage.UsePrimary(ctx)))
}

func TestReadsFallBackToPrimaryWhenReplicaDies(t *testing.T) {
	ctx := context.Background()
	db, rep := openReplicated(t, 0)
	_, err := db.Exec(ctx, `INSERT INTO repos VALUES ('a/b', 'default')`)
	require.NoError(t, err)
	waitReplicated(t, db)
	q, target := db.Choose(ctx, "")
	require.Equal(t, storage.TargetReplica, target)

	require.NoError(t, rep.Replica.Stop())
	// The Querier chosen before the replica died still answers, from the primary.
	var state string
	require.NoError(t, q.QueryRow(ctx, `SELECT state FROM repos WHERE path = 'a/b'`).Scan(&state))
	require.Equal(t, "default", state)
	// And new reads are routed to the primary.
	_, target = db.Choose(ctx, "")
	require.Equal(t, storage.TargetPrimary, target)
	rows, err := db.Read(ctx, "").Query(ctx, `SELECT path FROM repos`)
	require.NoError(t, err)
	rows.Close()
}

func TestWithoutReplicasEverythingIsPrimary(t *testing.T) {
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: storagetest.URL(t), Logger: quiet})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.RecordWrite(ctx, "k"))
	_, target := db.Choose(ctx, "k")
	require.Equal(t, storage.TargetPrimary, target)
}

// After a WAL segment switch an idle primary's insert position is past
// the new segment's page header, while a replica that replayed everything
// reports the segment's start. A write recorded there must still be
// readable from that replica, not wait for the primary's next record
// (which on an idle primary comes with the next standby snapshot, 15 s
// or more later).
func TestReadsReachReplicaWhenPrimaryIdlesAtSegmentStart(t *testing.T) {
	ctx := context.Background()
	db, rep := openReplicated(t, 0)
	primary, err := pgx.Connect(ctx, rep.PrimaryURL)
	require.NoError(t, err)
	defer primary.Close(ctx)
	replica, err := pgx.Connect(ctx, rep.ReplicaURL)
	require.NoError(t, err)
	defer replica.Close(ctx)
	const segment = 16 << 20 // initdb's default, which storagetest keeps
	deadline := time.Now().Add(20 * time.Second)
	for tries := 1; ; tries++ {
		require.True(t, time.Now().Before(deadline), "no quiet moment at a segment start in 20s (%d tries)", tries)
		_, err := db.Exec(ctx, `INSERT INTO repos VALUES ($1, 'default')`, fmt.Sprintf("group/switch-%d", tries))
		require.NoError(t, err)
		_, err = primary.Exec(ctx, `SELECT pg_switch_wal()`)
		require.NoError(t, err)
		insert := func() uint64 {
			var lsn int64
			require.NoError(t, primary.QueryRow(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint`).Scan(&lsn))
			return uint64(lsn)
		}
		at := insert()
		if at%segment != 40 {
			continue // a background record came after the switch
		}
		require.Eventually(t, func() bool {
			var replay int64
			require.NoError(t, replica.QueryRow(ctx, `SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint`).Scan(&replay))
			return uint64(replay) >= at-40
		}, 10*time.Second, 5*time.Millisecond, "the replica replays the switch")
		require.NoError(t, db.RecordWrite(ctx, "k"))
		time.Sleep(60 * time.Millisecond) // past the replica check's interval: the next Choose reads the replica again
		_, target := db.Choose(ctx, "k")
		if insert() != at {
			continue // the primary wrote meanwhile: inconclusive
		}
		require.Equal(t, storage.TargetReplica, target, "a replica that replayed everything takes the reads (try %d)", tries)
		return
	}
}

func TestOpenBadInput(t *testing.T) {
	ctx := context.Background()
	_, err := storage.Open(ctx, storage.Config{})
	require.ErrorIs(t, err, storage.ErrConfig)

	_, err = storage.Open(ctx, storage.Config{PrimaryURL: "postgres://user:secret@host:notaport/db"})
	require.ErrorIs(t, err, storage.ErrConfig)
	require.NotContains(t, err.Error(), "secret", "errors must not leak passwords")

	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = storage.Open(ctx2, storage.Config{PrimaryURL: "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2"})
	require.ErrorContains(t, err, "127.0.0.1:1/db")
	require.NotContains(t, err.Error(), "secret")

	_, err = storage.Open(ctx, storage.Config{PrimaryURL: storagetest.URL(t), ReplicaURLs: []string{"postgres://x:y@h:bad/db"}})
	require.ErrorIs(t, err, storage.ErrConfig)
	require.ErrorContains(t, err, "replica 0")
}

func TestOpenWithDeadReplicaStillServes(t *testing.T) {
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{
		PrimaryURL:  storagetest.URL(t),
		ReplicaURLs: []string{"postgres://u@127.0.0.1:1/db?connect_timeout=1"},
		Logger:      quiet,
	})
	require.NoError(t, err)
	defer db.Close()
	_, target := db.Choose(ctx, "")
	require.Equal(t, storage.TargetPrimary, target)
}

// A write that committed is never reported as failed: when the primary's
// WAL position cannot be read after the commit (here the writer's role may
// not call pg_current_wal_insert_lsn), WriteTx returns nil, the row is
// there, and the key's reads go to the primary although the replica is
// caught up. Before, WriteTx returned the position's error, inviting a
// retry of a committed write.
func TestWriteTxNeverFailsAfterCommit(t *testing.T) {
	ctx := context.Background()
	db, rep := openReplicated(t, 0)
	role := fmt.Sprintf("ferry_writer_%d", time.Now().UnixNano())
	_, err := db.Exec(ctx, `CREATE ROLE `+role+` LOGIN; GRANT ALL ON repos TO `+role)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role)
	})
	writerPool, err := pgxpool.New(ctx, rep.PrimaryURL+" user="+role)
	require.NoError(t, err)
	t.Cleanup(writerPool.Close)
	replicaPool, err := pgxpool.New(ctx, rep.ReplicaURL)
	require.NoError(t, err)
	t.Cleanup(replicaPool.Close)
	// Replica positions, once read, stay fresh for the whole test.
	routed, err := storage.WrapWith(storage.Config{ReplicaCheckInterval: time.Hour, Logger: quiet},
		storage.FromPool(writerPool), storage.FromPool(replicaPool))
	require.NoError(t, err)
	waitReplicated(t, db)
	_, target := routed.Choose(ctx, "")
	require.Equal(t, storage.TargetReplica, target)

	_, err = db.Exec(ctx, `REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC`)
	require.NoError(t, err)
	require.NoError(t, routed.WriteTx(ctx, "a/b", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO repos VALUES ('a/b', 'written')`)
		return err
	}))
	var state string
	require.NoError(t, db.QueryRow(ctx, `SELECT state FROM repos WHERE path = 'a/b'`).Scan(&state))
	require.Equal(t, "written", state)
	_, target = routed.Choose(ctx, "a/b")
	require.Equal(t, storage.TargetPrimary, target, "a write of unknown position is read from the primary")
	_, target = routed.Choose(ctx, "other")
	require.Equal(t, storage.TargetReplica, target, "other keys still read from the replica")
}
