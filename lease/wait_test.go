package lease_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
)

var discard = slog.New(slog.DiscardHandler)

var fastWait = lease.WaitOptions{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}

func TestWaitUntilReleased(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	first, err := lk.Acquire(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { _ = first.Release(context.Background()) })
	l, err := lease.Wait(t.Context(), lk, "k", time.Minute, fastWait)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if l.Token() <= first.Token() {
		t.Errorf("token %d, want > %d", l.Token(), first.Token())
	}
}

func TestWaitContextEnds(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	if _, err := lk.Acquire(t.Context(), "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := lease.Wait(ctx, lk, "k", time.Minute, fastWait)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, lease.ErrHeld) {
		t.Errorf("Wait past the deadline: %v, want DeadlineExceeded and ErrHeld", err)
	}
}

func TestWaitStopsOnOtherErrors(t *testing.T) {
	lk := leasetest.NewLocker(leasetest.Options{})
	boom := errors.New("database is down")
	lk.FailAcquires(boom)
	if _, err := lease.Wait(t.Context(), lk, "k", time.Minute, fastWait); !errors.Is(err, boom) {
		t.Errorf("Wait with a failing backend: %v, want its error at once", err)
	}
	lk.FailAcquires(nil)
	if _, err := lease.Wait(t.Context(), lk, "", time.Minute, fastWait); !errors.Is(err, lease.ErrInvalid) {
		t.Errorf("Wait with an empty key: %v, want ErrInvalid", err)
	}
}
