package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// spyLocker wraps a Locker to count renewals and, when block is set, to
// make Renew hang (ignoring its context) until block is closed.
type spyLocker struct {
	lease.Locker
	renewals atomic.Int64
	block    chan struct{}
}

func (s *spyLocker) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	l, err := s.Locker.Acquire(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return &spyLease{Lease: l, s: s}, nil
}

type spyLease struct {
	lease.Lease
	s *spyLocker
}

func (l *spyLease) Renew(ctx context.Context) error {
	l.s.renewals.Add(1)
	if l.s.block != nil {
		<-l.s.block
	}
	return l.Lease.Renew(ctx)
}

var quiet = lease.GuardOptions{Logger: discard}

func TestGuardRunsAndReleases(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	want := errors.New("work failed")
	var token int64
	err := lease.Guard(t.Context(), lk, "k", time.Minute, func(ctx context.Context, l lease.Lease) error {
		token = l.Token()
		if _, err := lk.Acquire(ctx, "k", time.Minute); !errors.Is(err, lease.ErrHeld) {
			t.Errorf("Acquire inside Guard: %v, want ErrHeld", err)
		}
		return want
	})
	if err != want {
		t.Errorf("Guard returned %v, want fn's error unchanged", err)
	}
	if token == 0 {
		t.Fatal("fn did not run")
	}
	if _, held := lk.Holder("k"); held {
		t.Error("the lease is still held after Guard returned")
	}
}

func TestGuardHeldKey(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{Holder: "other-instance"})
	l, err := lk.Acquire(t.Context(), "enqueuer", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(t.Context())
	err = lease.Guard(t.Context(), lk, "enqueuer", time.Minute, func(context.Context, lease.Lease) error {
		t.Error("fn ran without the lease")
		return nil
	})
	if !errors.Is(err, lease.ErrHeld) || !strings.Contains(err.Error(), "other-instance") {
		t.Errorf("Guard on a held key: %v, want ErrHeld naming the holder", err)
	}
}

func TestGuardRenews(t *testing.T) {
	spy := &spyLocker{Locker: leasetest.NewLocker(leasetest.Options{})}
	err := lease.GuardWith(t.Context(), spy, "k", time.Second, quiet, func(ctx context.Context, l lease.Lease) error {
		for spy.renewals.Load() < 3 {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(10 * time.Millisecond):
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Guard: %v", err)
	}
	// Renewals stop with Guard: its goroutines have ended.
	n := spy.renewals.Load()
	time.Sleep(time.Second)
	if got := spy.renewals.Load(); got != n {
		t.Errorf("%d renewals after Guard returned", got-n)
	}
}

func TestGuardLeaseLost(t *testing.T) {
	clock := leasetest.NewFakeClock(time.Now())
	lk := leasetest.NewLocker(leasetest.Options{Clock: clock})
	const ttl = 300 * time.Millisecond
	err := lease.GuardWith(t.Context(), lk, "k", ttl, quiet, func(ctx context.Context, l lease.Lease) error {
		clock.Advance(time.Hour) // the backend now sees the lease expired
		<-ctx.Done()
		if cause := context.Cause(ctx); !errors.Is(cause, lease.ErrLost) {
			t.Errorf("fn's context cause: %v, want ErrLost", cause)
		}
		return ctx.Err()
	})
	if !errors.Is(err, lease.ErrLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("Guard: %v, want ErrLost and fn's context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("Guard's error %q does not say what happened to which key", err)
	}
}

func TestGuardLostEvenIfFnSucceeds(t *testing.T) {
	clock := leasetest.NewFakeClock(time.Now())
	lk := leasetest.NewLocker(leasetest.Options{Clock: clock})
	const ttl = 300 * time.Millisecond
	err := lease.GuardWith(t.Context(), lk, "k", ttl, quiet, func(ctx context.Context, l lease.Lease) error {
		clock.Advance(time.Hour)
		<-ctx.Done()
		return nil // fn ignores the cancellation
	})
	if !errors.Is(err, lease.ErrLost) {
		t.Errorf("Guard: %v, want ErrLost although fn returned nil", err)
	}
}

func TestGuardRenewalFails(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	boom := errors.New("connection reset by peer")
	const ttl = 300 * time.Millisecond
	err := lease.GuardWith(t.Context(), lk, "k", ttl, quiet, func(ctx context.Context, l lease.Lease) error {
		lk.FailRenewals(boom)
		<-ctx.Done()
		// Stopped, but the lease is not lost: nobody else may have it yet.
		if _, err := lk.Acquire(context.Background(), "k", time.Minute); !errors.Is(err, lease.ErrHeld) {
			t.Errorf("Acquire by another holder after a failed renewal: %v, want ErrHeld", err)
		}
		lk.FailRenewals(nil)
		return ctx.Err()
	})
	if !errors.Is(err, lease.ErrRenewFailed) || !errors.Is(err, boom) || errors.Is(err, lease.ErrLost) {
		t.Errorf("Guard: %v, want ErrRenewFailed wrapping the renewal's error", err)
	}
	if _, held := lk.Holder("k"); held {
		t.Error("the lease is still held after Guard returned")
	}
}

// stuckGuard runs Guard over a Renew that hangs, ignoring its context,
// until fn has been cancelled, and returns Guard's error.
func stuckGuard(t *testing.T, opts lease.GuardOptions) error {
	spy := &spyLocker{Locker: leasetest.NewLocker(leasetest.Options{}), block: make(chan struct{})}
	var once sync.Once
	unblock := func() { once.Do(func() { close(spy.block) }) }
	defer unblock()
	opts.Logger = discard
	return lease.GuardWith(t.Context(), spy, "k", 300*time.Millisecond, opts, func(ctx context.Context, l lease.Lease) error {
		<-ctx.Done() // only Guard's own timers can end this: Renew hangs
		unblock()
		return ctx.Err()
	})
}

func TestGuardRenewalTimesOut(t *testing.T) {
	err := stuckGuard(t, lease.GuardOptions{})
	if !errors.Is(err, lease.ErrRenewFailed) || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("Guard with a stuck renewal: %v, want ErrRenewFailed saying it did not answer", err)
	}
}

func TestGuardExpiresWhileRenewing(t *testing.T) {
	// The renewal may take as long as it likes: the local expiry stops fn.
	err := stuckGuard(t, lease.GuardOptions{RenewTimeout: time.Hour})
	if !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Guard with a stuck renewal: %v, want ErrLost saying the lease expired", err)
	}
}

func TestGuardPanicReleases(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the panic from fn", p)
			}
		}()
		_ = lease.Guard(t.Context(), lk, "k", time.Minute, func(context.Context, lease.Lease) error {
			panic("boom")
		})
	}()
	if _, held := lk.Holder("k"); held {
		t.Error("the lease is still held after fn panicked")
	}
}

func TestGuardParentCancelled(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	err := lease.Guard(ctx, lk, "k", time.Minute, func(ctx context.Context, l lease.Lease) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, lease.ErrLost) {
		t.Errorf("Guard: %v, want fn's context.Canceled only", err)
	}
	if _, held := lk.Holder("k"); held {
		t.Error("the lease is still held although the release must ignore the cancelled context")
	}
}

func TestGuardWaitOption(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	l, err := lk.Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { _ = l.Release(context.Background()) })
	opts := lease.GuardOptions{Wait: &lease.WaitOptions{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}}
	err = lease.GuardWith(t.Context(), lk, "k", time.Minute, opts, func(ctx context.Context, got lease.Lease) error {
		if got.Token() <= l.Token() {
			t.Errorf("token %d, want > %d", got.Token(), l.Token())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("GuardWith(Wait): %v", err)
	}
}

func TestGuardBadInput(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	fn := func(context.Context, lease.Lease) error {
		t.Error("fn ran")
		return nil
	}
	for name, err := range map[string]error{
		"empty key":        lease.Guard(t.Context(), lk, "", time.Minute, fn),
		"zero ttl":         lease.Guard(t.Context(), lk, "k", 0, fn),
		"RenewEvery ≥ ttl": lease.GuardWith(t.Context(), lk, "k", time.Second, lease.GuardOptions{RenewEvery: time.Second}, fn),
	} {
		if !errors.Is(err, lease.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
