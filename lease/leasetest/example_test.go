package leasetest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// A host's unit test decides when leases expire with a FakeClock: a second
// instance is refused while the lease is live and takes over, with a larger
// fencing token, once the test moves time past the TTL.
func ExampleNewLocker() {
	ctx := context.Background()
	clock := leasetest.NewFakeClock(time.Unix(0, 0))
	locker := leasetest.NewLocker(leasetest.Options{Clock: clock})

	first, _ := locker.Acquire(ctx, "enqueuer", time.Minute)
	_, err := locker.Acquire(ctx, "enqueuer", time.Minute)
	fmt.Println(errors.Is(err, lease.ErrHeld))

	clock.Advance(2 * time.Minute) // the first holder stalled past its TTL
	second, _ := locker.Acquire(ctx, "enqueuer", time.Minute)
	fmt.Println(second.Token() > first.Token())
	fmt.Println(errors.Is(first.Renew(ctx), lease.ErrLost))
	// Output:
	// true
	// true
	// true
}
