package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// Observe passes Inspect through to the backend, without reporting it as
// an acquisition; a Locker that cannot inspect is refused with ErrInvalid.
func TestInspectThroughObserve(t *testing.T) {
	ctx := t.Context()
	clock := leasetest.NewFakeClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	g := &eventLog{}
	locker := lease.Observe(leasetest.NewLocker(leasetest.Options{Clock: clock, Holder: "me"}), g.observer())
	l, err := locker.Acquire(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h, err := lease.Inspect(ctx, locker, "k")
	if err != nil {
		t.Fatal(err)
	}
	want := lease.Holding{Key: "k", Held: true, Holder: "me", Token: l.Token(), ExpiresAt: clock.Now().Add(time.Minute)}
	if h != want {
		t.Fatalf("Inspect = %+v, want %+v", h, want)
	}
	if len(g.acquires) != 1 {
		t.Errorf("Inspect was reported as an acquisition: %d AcquireEnd events", len(g.acquires))
	}

	_, err = lease.Inspect(ctx, plainLocker{}, "k")
	if !errors.Is(err, lease.ErrInvalid) {
		t.Fatalf("Inspect on a Locker without Inspect: %v, want ErrInvalid", err)
	}
}

// plainLocker is a Locker that is not an Inspector.
type plainLocker struct{}

func (plainLocker) Acquire(context.Context, string, time.Duration) (lease.Lease, error) {
	return nil, errors.New("not used")
}
