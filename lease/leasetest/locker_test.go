package leasetest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

func TestConformance(t *testing.T) {
	leasetest.Run(t, func(t *testing.T) lease.Locker {
		return leasetest.NewLocker(leasetest.Options{})
	})
}

func TestFakeClockExpiry(t *testing.T) {
	clock := leasetest.NewFakeClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	lk := leasetest.NewLocker(leasetest.Options{Clock: clock, Holder: "worker-1"})
	l, err := lk.Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	_, err = lk.Acquire(t.Context(), "k", time.Minute)
	var held *lease.HeldError
	if !errors.As(err, &held) || held.Holder != "worker-1" || !held.ExpiresAt.Equal(clock.Now().Add(time.Second)) {
		t.Fatalf("Acquire before expiry: %v, want a HeldError naming worker-1 expiring in 1s", err)
	}
	if tok, ok := lk.Holder("k"); !ok || tok != l.Token() {
		t.Errorf("Holder = %d, %v; want %d, true", tok, ok, l.Token())
	}
	clock.Advance(time.Second)
	if _, ok := lk.Holder("k"); ok {
		t.Errorf("Holder reports a lease past its expiry")
	}
	if err := l.Renew(t.Context()); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew after expiry: %v, want ErrLost", err)
	}
	next, err := lk.Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if next.Token() <= l.Token() {
		t.Errorf("token %d after %d", next.Token(), l.Token())
	}
}

func TestFailureInjection(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	boom := errors.New("connection reset")
	l, err := lk.Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lk.FailRenewals(boom)
	if err := l.Renew(t.Context()); !errors.Is(err, boom) || errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew with injected failure: %v", err)
	}
	lk.FailRenewals(nil)
	if err := l.Renew(t.Context()); err != nil {
		t.Errorf("Renew after clearing the failure: %v", err)
	}
	lk.FailAcquires(boom)
	if _, err := lk.Acquire(t.Context(), "other", time.Minute); !errors.Is(err, boom) {
		t.Errorf("Acquire with injected failure: %v", err)
	}
}
