package lease_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// eventLog keeps what an Observer was told.
type eventLog struct {
	mu       sync.Mutex
	acquires []lease.AcquireEvent
	renews   []lease.RenewEvent
	ends     []lease.EndEvent
	fences   []lease.FenceEvent
}

func (g *eventLog) observer() lease.Observer {
	return lease.ObserverFuncs{
		OnAcquireEnd: func(_ context.Context, e lease.AcquireEvent) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.acquires = append(g.acquires, e)
		},
		OnRenewEnd: func(_ context.Context, e lease.RenewEvent) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.renews = append(g.renews, e)
		},
		OnLeaseEnded: func(_ context.Context, e lease.EndEvent) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.ends = append(g.ends, e)
		},
		OnFenceChecked: func(_ context.Context, e lease.FenceEvent) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.fences = append(g.fences, e)
		},
	}
}

func TestObserve(t *testing.T) {
	ctx := t.Context()
	clock := leasetest.NewFakeClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	base := leasetest.NewLocker(leasetest.Options{Clock: clock})
	g := &eventLog{}
	locker := lease.Observe(base, lease.MultiObserver(nil, g.observer()))

	l, err := locker.Acquire(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Acquire(ctx, "k", time.Minute); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second Acquire: %v", err)
	}
	if _, err := locker.Acquire(ctx, "", time.Minute); !errors.Is(err, lease.ErrInvalid) {
		t.Fatalf("Acquire of an empty key: %v", err)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Renew after expiry: %v", err)
	}
	if err := l.Release(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Release after expiry: %v", err)
	}
	l2, err := locker.Acquire(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	var results []lease.AcquireResult
	for _, e := range g.acquires {
		results = append(results, e.Result)
	}
	want := []lease.AcquireResult{lease.Acquired, lease.AcquireHeld, lease.AcquireFailed, lease.Acquired}
	if !slices.Equal(results, want) {
		t.Fatalf("acquire results %v, want %v", results, want)
	}
	if g.acquires[0].Token != l.Token() || g.acquires[3].Token != l2.Token() || g.acquires[1].Err == nil {
		t.Fatalf("acquire events %+v", g.acquires)
	}
	if len(g.renews) != 2 || g.renews[0].Err != nil || !errors.Is(g.renews[1].Err, lease.ErrLost) {
		t.Fatalf("renew events %+v", g.renews)
	}
	// The first lease ended once (lost at the renewal, not again at the
	// release); the second once, released.
	if len(g.ends) != 2 || g.ends[0].Reason != lease.EndLost || g.ends[0].Token != l.Token() ||
		g.ends[1].Reason != lease.EndReleased || g.ends[1].Token != l2.Token() {
		t.Fatalf("end events %+v", g.ends)
	}
}

func TestObserveReleaseFailure(t *testing.T) {
	d := &scriptedDriver{ok: true, now: time.Now()}
	locker := lockerFunc(func(context.Context, string, time.Duration) (lease.Lease, error) {
		return lease.New(d, "k", 1, time.Minute, time.Now()), nil
	})
	g := &eventLog{}
	l, err := lease.Observe(locker, g.observer()).Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d.set(false, errors.New("connection reset"), time.Now())
	if err := l.Release(t.Context()); err == nil {
		t.Fatal("Release succeeded")
	}
	if len(g.ends) != 1 || g.ends[0].Reason != lease.EndReleaseFailed || g.ends[0].Err == nil {
		t.Fatalf("end events %+v", g.ends)
	}
}

// Guard's renewals and release go through the observed Locker.
func TestObserveUnderGuard(t *testing.T) {
	g := &eventLog{}
	locker := lease.Observe(leasetest.NewLocker(leasetest.Options{}), g.observer())
	err := lease.GuardWith(t.Context(), locker, "k", 5*time.Second, lease.GuardOptions{RenewEvery: 20 * time.Millisecond, RenewTimeout: 4 * time.Second},
		func(ctx context.Context, l lease.Lease) error {
			// Held until a renewal was observed (every 20 ms), not for a
			// fixed time a loaded machine may not renew within.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				g.mu.Lock()
				n := len(g.renews)
				g.mu.Unlock()
				if n > 0 {
					break
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.acquires) != 1 || len(g.renews) == 0 || len(g.ends) != 1 || g.ends[0].Reason != lease.EndReleased || g.ends[0].Held <= 0 {
		t.Fatalf("acquires %d renews %d ends %+v", len(g.acquires), len(g.renews), g.ends)
	}
}

func TestObserveNil(t *testing.T) {
	base := leasetest.NewLocker(leasetest.Options{})
	if lease.Observe(base, nil) != lease.Locker(base) {
		t.Fatal("Observe with a nil Observer wraps")
	}
	o := lease.MultiObserver()
	ctx := o.AcquireStart(t.Context(), lease.AcquireStartEvent{})
	o.AcquireEnd(ctx, lease.AcquireEvent{})
	ctx = lease.ObserverFuncs{}.RenewStart(t.Context(), lease.RenewStartEvent{})
	if ctx != t.Context() {
		t.Fatal("an empty RenewStart must return its context")
	}
	o.RenewEnd(ctx, lease.RenewEvent{})
	o.LeaseEnded(t.Context(), lease.EndEvent{})
	o.FenceChecked(t.Context(), lease.FenceEvent{})
	lease.ObserverFuncs{}.FenceChecked(t.Context(), lease.FenceEvent{})
}

type spanKey struct{}

// TestObserveNests checks that Acquire and Renew run under the contexts
// their Start hooks returned, and that each End gets its own Start's
// context back, through a MultiObserver of two.
func TestObserveNests(t *testing.T) {
	var mu sync.Mutex
	var log []string
	tracer := func(name string) lease.Observer {
		note := func(s string) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, s)
		}
		return lease.ObserverFuncs{
			OnAcquireStart: func(ctx context.Context, e lease.AcquireStartEvent) context.Context {
				return context.WithValue(ctx, spanKey{}, name+":acquire "+e.Key)
			},
			OnAcquireEnd: func(ctx context.Context, e lease.AcquireEvent) { note("end " + ctx.Value(spanKey{}).(string)) },
			OnRenewStart: func(ctx context.Context, e lease.RenewStartEvent) context.Context {
				return context.WithValue(ctx, spanKey{}, name+":renew "+e.Key)
			},
			OnRenewEnd: func(ctx context.Context, e lease.RenewEvent) { note("end " + ctx.Value(spanKey{}).(string)) },
		}
	}
	base := leasetest.NewLocker(leasetest.Options{})
	inner := lockerFunc(func(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
		mu.Lock()
		log = append(log, "acquire under "+ctx.Value(spanKey{}).(string))
		mu.Unlock()
		return base.Acquire(ctx, key, ttl)
	})
	l, err := lease.Observe(inner, lease.MultiObserver(tracer("a"), tracer("b"))).Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"acquire under b:acquire k", "end b:acquire k", "end a:acquire k", "end b:renew k", "end a:renew k"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(log, want) {
		t.Fatalf("got %q, want %q", log, want)
	}
}

type lockerFunc func(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error)

func (f lockerFunc) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	return f(ctx, key, ttl)
}

// A Renew that finds the lease lost reports LeaseEnded under the caller's
// context: the renewal's span has ended by then (a tracer would drop an
// event added to it).
func TestObserveLostRenewalEndsUnderCallersContext(t *testing.T) {
	var got any = "no LeaseEnded"
	obs := lease.ObserverFuncs{
		OnRenewStart: func(ctx context.Context, _ lease.RenewStartEvent) context.Context {
			return context.WithValue(ctx, spanKey{}, "renew span")
		},
		OnLeaseEnded: func(ctx context.Context, _ lease.EndEvent) { got = ctx.Value(spanKey{}) },
	}
	locker := leasetest.NewLocker(leasetest.Options{})
	l, err := lease.Observe(locker, obs).Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Break(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(t.Context(), spanKey{}, "caller")
	if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Renew after Break: %v, want ErrLost", err)
	}
	if got != "caller" {
		t.Fatalf("LeaseEnded saw span %v, want the caller's", got)
	}
}
