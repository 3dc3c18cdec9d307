package prommetrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestLeaseMetricsMove(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	pool := storagetest.Pool(t)
	locker := lease.Observe(pglease.New(storage.FromPool(pool), pglease.Options{Holder: "a"}), m.Lease())
	other := lease.Observe(pglease.New(storage.FromPool(pool), pglease.Options{Holder: "b"}), m.Lease())
	const key = "container_registry:migration:enqueuer_worker"
	fence := func(l lease.Lease) error {
		return storage.InTx(ctx, pool, func(tx pgx.Tx) error {
			return pglease.FenceWith(ctx, tx, l.Key(), l.Token(), pglease.FenceOptions{Observer: m.Lease()})
		})
	}

	// Guard: acquired, renewed, fenced write passes, released.
	err := lease.GuardWith(ctx, locker, key, 5*time.Second, lease.GuardOptions{RenewEvery: 50 * time.Millisecond, RenewTimeout: 4 * time.Second},
		func(ctx context.Context, l lease.Lease) error {
			require.Equal(t, 1.0, must(t, reg, "ferry_lease_held", "key", key))
			_, err := other.Acquire(ctx, key, time.Second)
			require.ErrorIs(t, err, lease.ErrHeld)
			// Held until a renewal has been counted (every 50 ms), not
			// for a fixed time a loaded machine may not renew within.
			require.Eventually(t, func() bool {
				v, _ := value(t, reg, "ferry_lease_renewals_total", "key", key, "result", "ok")
				return v > 0
			}, 10*time.Second, 5*time.Millisecond, "no renewal while held")
			return fence(l)
		})
	require.NoError(t, err)
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_acquires_total", "key", key, "result", "acquired"))
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_acquires_total", "key", key, "result", "held"))
	renewals := must(t, reg, "ferry_lease_renewals_total", "key", key, "result", "ok")
	require.Positive(t, renewals)
	require.Equal(t, renewals, must(t, reg, "ferry_lease_renew_duration_seconds", "key", key))
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_fence_checks_total", "key", key, "result", "ok"))
	require.Equal(t, 0.0, must(t, reg, "ferry_lease_held", "key", key))

	// A holder that pauses past its ttl is replaced: its renewal finds the
	// lease lost and its late write is fenced off.
	old, err := locker.Acquire(ctx, key, 50*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	repl, err := other.Acquire(ctx, key, time.Minute)
	require.NoError(t, err)
	require.ErrorIs(t, old.Renew(ctx), lease.ErrLost)
	require.ErrorIs(t, fence(old), lease.ErrFenced)
	require.ErrorIs(t, old.Release(ctx), lease.ErrLost)
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_renewals_total", "key", key, "result", "lost"))
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_lost_total", "key", key), "lost once, at the renewal")
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_fence_checks_total", "key", key, "result", "fenced"))
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_held", "key", key), "the new holder's")
	require.NoError(t, repl.Release(ctx))
	require.Equal(t, 0.0, must(t, reg, "ferry_lease_held", "key", key))

	// Failures of the store.
	broken := lease.Observe(lockerFunc(func(context.Context, string, time.Duration) (lease.Lease, error) {
		return nil, errors.New("connection refused")
	}), m.Lease())
	_, err = broken.Acquire(ctx, key, time.Second)
	require.Error(t, err)
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_acquires_total", "key", key, "result", "error"))
	m.Lease().RenewEnd(ctx, lease.RenewEvent{Key: key, Err: errors.New("timeout")})
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_renewals_total", "key", key, "result", "error"))
	m.Lease().LeaseEnded(ctx, lease.EndEvent{Key: "k2", Reason: lease.EndReleaseFailed})
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_release_failures_total", "key", "k2"))
	m.Lease().FenceChecked(ctx, lease.FenceEvent{Key: key, Err: errors.New("conn")})
	require.Equal(t, 1.0, must(t, reg, "ferry_lease_fence_checks_total", "key", key, "result", "error"))
}

type lockerFunc func(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error)

func (f lockerFunc) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	return f(ctx, key, ttl)
}
