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
	"github.com/ferryhq/ferry/lease/redislease"
)

// contender tries to take key every few milliseconds until it gets it or
// stop is closed, and reports a success while fnRunning is true: that
// would be a second holder.
func contender(t *testing.T, lk lease.Locker, key string, fnRunning *atomic.Bool, stop <-chan struct{}) <-chan lease.Lease {
	got := make(chan lease.Lease, 1)
	go func() {
		defer close(got)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			l, err := lk.Acquire(context.Background(), key, time.Minute)
			if err != nil {
				continue // held, or the server is down
			}
			if fnRunning.Load() {
				t.Errorf("contender got token %d while the guarded function was still running", l.Token())
			}
			got <- l
			return
		}
	}()
	return got
}

// Redis restarts during Guard and stays down past the ttl: renewals fail,
// fn is cancelled, and no other holder gets the key while fn runs. Once
// Redis is back, the lease (kept by the append-only file) has expired and
// another holder takes the key with a larger token.
func TestGuardServerRestart(t *testing.T) {
	srv := redistest.New(t)
	guarded := redislease.New(newClient(t, srv.Options()), redislease.Options{Holder: "guarded"})
	other := redislease.New(newClient(t, srv.Options()), redislease.Options{Holder: "contender"})
	const ttl = 1500 * time.Millisecond

	var running atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	var got <-chan lease.Lease
	restarted := make(chan error, 1)
	var token int64
	opts := lease.GuardOptions{Logger: slog.New(slog.DiscardHandler)}
	err := lease.GuardWith(t.Context(), guarded, "enqueuer", ttl, opts, func(ctx context.Context, l lease.Lease) error {
		running.Store(true)
		defer running.Store(false)
		token = l.Token()
		got = contender(t, other, "enqueuer", &running, stop)
		go func() { restarted <- srv.Restart(context.Background(), ttl+500*time.Millisecond) }()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			t.Error("fn's context was not cancelled")
			return nil
		}
	})
	if !errors.Is(err, lease.ErrRenewFailed) && !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Guard: %v, want ErrRenewFailed or ErrLost", err)
	}
	t.Logf("Guard: %v", err)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l == nil {
			t.Fatal("contender gave up")
		}
		if l.Token() <= token {
			t.Errorf("token after the restart %d, want > %d", l.Token(), token)
		}
		_ = l.Release(t.Context())
	case <-time.After(30 * time.Second):
		t.Fatal("no holder after the restart")
	}
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
		contender(t, other, "enqueuer", &running, stop)
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
