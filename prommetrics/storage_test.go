package prommetrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestStorageMetricsMove(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	rep := storagetest.NewReplicated(t, time.Second) // behind for a moment even on a loaded machine
	db, err := storage.Open(ctx, storage.Config{
		PrimaryURL: rep.PrimaryURL, ReplicaURLs: []string{rep.ReplicaURL},
		ReplicaCheckInterval: 20 * time.Millisecond, Logger: quiet, Observer: m.Storage(),
	})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(ctx, `CREATE TABLE repos (path text PRIMARY KEY)`)
	require.NoError(t, err)

	// Reads go to the replica once it has caught up.
	require.NoError(t, db.RecordWrite(ctx, "k"))
	require.Eventually(t, func() bool {
		_, target := db.Choose(ctx, "k")
		return target == storage.TargetReplica
	}, 20*time.Second, 10*time.Millisecond)
	require.Positive(t, must(t, reg, "ferry_storage_reads_total", "target", "replica", "reason", "caught_up"))
	require.Positive(t, must(t, reg, "ferry_storage_reads_total", "target", "primary", "reason", "replicas_behind"))
	db.Read(storage.UsePrimary(ctx), "k")
	require.Equal(t, 1.0, must(t, reg, "ferry_storage_reads_total", "target", "primary", "reason", "use_primary"))
	checks := must(t, reg, "ferry_storage_replica_checks_total", "result", "ok")
	require.Positive(t, checks)
	require.Equal(t, checks, must(t, reg, "ferry_storage_replica_check_duration_seconds"))
	require.Equal(t, 1.0, must(t, reg, "ferry_storage_replica_up"))

	// A write the replica has not replayed shows as lag at the next check.
	require.NoError(t, db.WriteTx(ctx, "a", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO repos SELECT 'p' || g FROM generate_series(1, 1000) g`)
		return err
	}))
	time.Sleep(30 * time.Millisecond) // past ReplicaCheckInterval
	db.Read(ctx, "a")
	require.Positive(t, must(t, reg, "ferry_storage_replica_lag_bytes"))

	// The replica dies: a read chosen before falls back, then it is down.
	require.Eventually(t, func() bool {
		_, target := db.Choose(ctx, "a")
		return target == storage.TargetReplica
	}, 20*time.Second, 10*time.Millisecond)
	q := db.Read(ctx, "")
	require.NoError(t, rep.Replica.Stop())
	var n int
	require.NoError(t, q.QueryRow(ctx, `SELECT count(*) FROM repos`).Scan(&n))
	require.Equal(t, 1000, n)
	require.Equal(t, 1.0, must(t, reg, "ferry_storage_replica_fallbacks_total"))
	require.Equal(t, 0.0, must(t, reg, "ferry_storage_replica_up"))
	db.Read(ctx, "")
	require.Equal(t, 1.0, must(t, reg, "ferry_storage_reads_total", "target", "primary", "reason", "replicas_down"))

	// Without replicas, reads say so.
	single, err := storage.Open(ctx, storage.Config{PrimaryURL: rep.PrimaryURL, Logger: quiet, Observer: m.Storage()})
	require.NoError(t, err)
	defer single.Close()
	single.Read(ctx, "k")
	require.Equal(t, 1.0, must(t, reg, "ferry_storage_reads_total", "target", "primary", "reason", "no_replicas"))
}
