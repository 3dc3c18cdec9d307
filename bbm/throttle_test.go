package bbm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// ReplicaLagThrottler holds while a real streaming replica (replaying WAL
// two seconds late) is behind, and lets go once it caught up.
func TestReplicaLagThrottler(t *testing.T) {
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, 2*time.Second)
	primary := newPool(t, rep.PrimaryURL)
	th := bbm.NewReplicaLagThrottler(storage.FromPool(primary), bbm.ReplicaLagOptions{MaxLagBytes: 64 << 10, MaxLag: time.Hour, RetryAfter: 50 * time.Millisecond})
	require.Eventually(t, func() bool {
		d, err := th.Throttle(ctx)
		require.NoError(t, err)
		return !d.Hold
	}, 30*time.Second, 20*time.Millisecond, "an idle replica keeps holding")

	// The replica waits at this commit record for two seconds (the apply
	// delay holds commits, not the data before them), so the megabytes of
	// WAL written next stay unreplayed meanwhile.
	_, err := primary.Exec(ctx, `CREATE TABLE marker ()`)
	require.NoError(t, err)
	itemsTable(t, primary, "items", 20_000)
	d, err := th.Throttle(ctx)
	require.NoError(t, err)
	require.True(t, d.Hold, "no hold right after writing megabytes the replica replays a second late")
	require.Contains(t, d.Reason, "replica lag")
	require.Contains(t, d.Reason, "bytes")
	require.Positive(t, d.RetryAfter)
	require.Eventually(t, func() bool {
		d, err := th.Throttle(ctx)
		require.NoError(t, err)
		return !d.Hold
	}, 30*time.Second, 20*time.Millisecond, "still holding after the replica caught up")

	strict := bbm.NewReplicaLagThrottler(storage.FromPool(primary), bbm.ReplicaLagOptions{MinReplicas: 2})
	d, err = strict.Throttle(ctx)
	require.NoError(t, err)
	require.True(t, d.Hold)
	require.Contains(t, d.Reason, "1 replicas streaming, want 2")

	// A worker using it backfills once the replica keeps up.
	opts := fastOptions()
	opts.Throttler = th
	w := bbm.NewSyncWorker(storage.FromPool(primary), opts)
	require.NoError(t, w.Register(fillWork("fill")))
	register(t, w.Admin(), "m", "items", "fill", 10_000)
	require.NoError(t, w.Run(ctx))
	requireFilled(t, primary, "items")
}
