//go:build unix

package redislease_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/redislease"
)

// Redis hangs (SIGSTOP) while Guard's fn runs, on a client whose own
// timeouts are an hour and that ignores contexts (go-redis's default,
// ContextTimeoutEnabled false): Guard still returns once ReleaseTimeout
// has passed, with the release's deadline in its error, while Redis is
// still hung. It used to wait for the client's timeouts (9s with the
// defaults, an hour here).
func TestGuardReturnsWhileRedisHangs(t *testing.T) {
	srv := redistest.New(t)
	opts := srv.Options()
	opts.ReadTimeout, opts.WriteTimeout = time.Hour, time.Hour
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	lk := redislease.New(client, redislease.Options{})

	hung := false
	t.Cleanup(func() {
		if hung {
			_ = srv.Signal(syscall.SIGCONT)
		}
	})
	returned := make(chan error, 1)
	go func() {
		returned <- lease.GuardWith(t.Context(), lk, "k", time.Minute,
			lease.GuardOptions{ReleaseTimeout: 200 * time.Millisecond}, func(ctx context.Context, l lease.Lease) error {
				if err := srv.Signal(syscall.SIGSTOP); err != nil {
					return err
				}
				hung = true
				return nil
			})
	}()
	select {
	case err := <-returned:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Guard: %v, want the release's deadline", err)
		}
		t.Logf("Guard: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Guard waited for the hung Redis instead of its ReleaseTimeout")
	}
	if err := srv.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	hung = false
}
