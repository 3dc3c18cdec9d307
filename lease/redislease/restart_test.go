package redislease_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/redislease"
)

// Redis restarts during Guard and stays down past the ttl: renewals fail,
// fn is cancelled, and no other holder gets the key while fn runs. Once
// Redis is back, the lease (kept by the append-only file) has expired and
// another holder takes the key with a larger token.
func TestGuardServerRestart(t *testing.T) {
	srv := redistest.New(t)
	guarded := redislease.New(newClient(t, srv.Options()), redislease.Options{Holder: "guarded"})
	other := redislease.New(newClient(t, srv.Options()), redislease.Options{Holder: "contender"})
	const ttl = 1500 * time.Millisecond

	restarted := make(chan error, 1)
	next, err := leasetest.Outage(t, guarded, other, "enqueuer", ttl, func() {
		go func() { restarted <- srv.Restart(context.Background(), ttl+500*time.Millisecond) }()
	})
	if !errors.Is(err, lease.ErrRenewFailed) && !errors.Is(err, lease.ErrLost) {
		t.Errorf("Guard: %v, want ErrRenewFailed or ErrLost", err)
	}
	t.Logf("Guard: %v", err)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	_ = next.Release(t.Context())
}

// A quick restart keeps the lease (append-only file): whether or not a
// renewal fails meanwhile, no second holder appears while fn runs.
func TestGuardQuickRestart(t *testing.T) {
	srv := redistest.New(t)
	guarded := redislease.New(newClient(t, srv.Options()), redislease.Options{Holder: "guarded"})
	other := redislease.New(newClient(t, srv.Options()), redislease.Options{Holder: "contender"})
	const ttl = time.Second

	var running atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	opts := lease.GuardOptions{Logger: slog.New(slog.DiscardHandler)}
	err := lease.GuardWith(t.Context(), guarded, "enqueuer", ttl, opts, func(ctx context.Context, l lease.Lease) error {
		running.Store(true)
		defer running.Store(false)
		leasetest.Contender(t, other, "enqueuer", running.Load, stop)
		if err := srv.Restart(ctx, 0); err != nil {
			t.Error(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * ttl): // several renewals after the restart
		}
		return nil
	})
	if err != nil && !errors.Is(err, lease.ErrRenewFailed) && !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Guard: %v", err)
	}
	t.Logf("Guard: %v", err)
}
