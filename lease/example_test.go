package lease_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// One instance runs the enqueuer under a lease; a second one finds the
// key taken and is told by whom.
func ExampleGuard() {
	ctx := context.Background()
	clock := leasetest.NewFakeClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	locker := leasetest.NewLocker(leasetest.Options{Clock: clock, Holder: "worker-a"})

	err := lease.Guard(ctx, locker, "registry:enqueuer", 30*time.Second,
		func(ctx context.Context, l lease.Lease) error {
			fmt.Println("running with token", l.Token())
			_, err := locker.Acquire(ctx, "registry:enqueuer", 30*time.Second)
			fmt.Println("second instance:", err)
			return nil
		})
	fmt.Println("guard:", err)

	// Output:
	// running with token 1
	// second instance: lease: key "registry:enqueuer" is held by worker-a until 2024-05-01T12:00:30Z
	// guard: <nil>
}

// Every acquisition of a key gets a larger fencing token; a lease that
// expired can neither be renewed nor released.
func ExampleLocker() {
	ctx := context.Background()
	clock := leasetest.NewFakeClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	locker := leasetest.NewLocker(leasetest.Options{Clock: clock})

	first, _ := locker.Acquire(ctx, "repo:gitlab-org/gitlab", time.Minute)
	clock.Advance(2 * time.Minute) // the holder stalled past its ttl
	second, _ := locker.Acquire(ctx, "repo:gitlab-org/gitlab", time.Minute)
	fmt.Println("tokens:", first.Token(), second.Token())

	err := first.Renew(ctx)
	fmt.Println("stale renew lost:", errors.Is(err, lease.ErrLost))
	fmt.Println("release:", second.Release(ctx), second.Release(ctx))

	// Output:
	// tokens: 1 2
	// stale renew lost: true
	// release: <nil> <nil>
}

// Wait retries with backoff until the holder lets go.
func ExampleWait() {
	ctx := context.Background()
	locker := leasetest.NewLocker(leasetest.Options{})
	held, _ := locker.Acquire(ctx, "nightly-gc", time.Minute)
	time.AfterFunc(50*time.Millisecond, func() { _ = held.Release(ctx) })

	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := lease.Wait(waitCtx, locker, "nightly-gc", time.Minute, lease.WaitOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Release(ctx)
	fmt.Println("got it with token", l.Token())

	// Output:
	// got it with token 2
}

// Hooks have pgx's tracer shape: AcquireStart returns the context the
// Acquire runs under (a tracer would start a span there) and AcquireEnd
// gets it back with the outcome (and would end the span).
func ExampleObserve() {
	type spanKey struct{}
	tracer := lease.ObserverFuncs{
		OnAcquireStart: func(ctx context.Context, e lease.AcquireStartEvent) context.Context {
			fmt.Println("start span: acquire", e.Key)
			return context.WithValue(ctx, spanKey{}, "acquire "+e.Key)
		},
		OnAcquireEnd: func(ctx context.Context, e lease.AcquireEvent) {
			fmt.Printf("end span: %s (%s, token %d)\n", ctx.Value(spanKey{}), e.Result, e.Token)
		},
		OnLeaseEnded: func(_ context.Context, e lease.EndEvent) {
			fmt.Println("event: lease", e.Key, e.Reason)
		},
	}
	locker := lease.Observe(leasetest.NewLocker(leasetest.Options{}), tracer)
	ctx := context.Background()
	l, err := locker.Acquire(ctx, "registry:enqueuer", time.Minute)
	if err != nil {
		panic(err)
	}
	_ = l.Release(ctx)

	// Output:
	// start span: acquire registry:enqueuer
	// end span: acquire registry:enqueuer (acquired, token 1)
	// event: lease registry:enqueuer released
}
