package leasetest

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// Contender tries to take key on lk every few milliseconds, from a
// goroutine, until it gets it or stop is closed. It sends the lease it got
// on the returned channel, which is closed without a lease when stop was
// closed first. Getting the key while busy() is true is reported as a test
// error: that is a second holder.
func Contender(t testing.TB, lk lease.Locker, key string, busy func() bool, stop <-chan struct{}) <-chan lease.Lease {
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
				continue // held, or the store is out of reach for this locker too
			}
			if busy() {
				t.Errorf("contender got key %q (token %d) while the guarded function was still running", key, l.Token())
			}
			got <- l
			return
		}
	}()
	return got
}

// outageWait bounds how long Outage waits for fn's context to be cancelled
// and then for the key to become free; only a broken Locker or Guard takes
// anywhere near that long.
const outageWait = 30 * time.Second

// Outage checks what a backend outage does to a guarded holder. It runs
// lease.GuardWith on key on guarded with a function that starts a
// Contender on other and then calls disrupt, which should cut guarded off
// its store (kill its connections, stop the server, cut the network). The
// function then waits for its context to be cancelled.
//
// It reports as test errors a function whose context is not cancelled, a
// contender that gets the key while the function still runs, a key that
// never becomes free afterwards, and a contender's token that is not
// larger than the guarded one. It returns the contender's lease, for the
// caller to release, and Guard's error, for the caller to check which
// failure Guard saw. disrupt's effects are the caller's to undo.
func Outage(t *testing.T, guarded, other lease.Locker, key string, ttl time.Duration, disrupt func()) (next lease.Lease, guardErr error) {
	t.Helper()
	var running atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	var got <-chan lease.Lease
	var token int64
	opts := lease.GuardOptions{Logger: slog.New(slog.DiscardHandler)}
	guardErr = lease.GuardWith(t.Context(), guarded, key, ttl, opts, func(ctx context.Context, l lease.Lease) error {
		running.Store(true)
		defer running.Store(false)
		token = l.Token()
		got = Contender(t, other, key, running.Load, stop)
		disrupt()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(outageWait):
			t.Errorf("the guarded function's context was not cancelled %s into the outage", outageWait)
			return nil
		}
	})
	if got == nil { // Guard never ran the function
		t.Fatalf("Guard on %q: %v", key, guardErr)
	}
	select {
	case next = <-got:
		if next == nil {
			t.Fatalf("the contender gave up on %q", key)
		}
	case <-time.After(outageWait):
		t.Fatalf("key %q was still held %s after the guarded function ended", key, outageWait)
	}
	if next.Token() <= token {
		t.Errorf("the contender's token %d is not larger than the guarded holder's %d", next.Token(), token)
	}
	return next, guardErr
}
