package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// scriptedDriver answers as told and counts the calls it gets. Its Now
// makes it a lease.Clock.
type scriptedDriver struct {
	mu       sync.Mutex
	ok       bool
	err      error
	now      time.Time
	renews   int
	releases int
}

func (d *scriptedDriver) Now() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now
}

func (d *scriptedDriver) Renew(context.Context, string, int64, time.Duration) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.renews++
	return d.ok, d.err
}

func (d *scriptedDriver) Release(context.Context, string, int64) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.releases++
	return d.ok, d.err
}

func (d *scriptedDriver) set(ok bool, err error, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ok, d.err, d.now = ok, err, now
}

func TestNew(t *testing.T) {
	ctx := t.Context()
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	d := &scriptedDriver{ok: true, now: start}
	l := lease.New(d, "k", 7, time.Minute, start)
	if l.Key() != "k" || l.Token() != 7 || !l.ExpiresAt().Equal(start.Add(time.Minute)) {
		t.Fatalf("New: key %q token %d expiry %s", l.Key(), l.Token(), l.ExpiresAt())
	}

	// Renewals count from when they were sent, by the driver's clock.
	d.set(true, nil, start.Add(10*time.Second))
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if want := start.Add(70 * time.Second); !l.ExpiresAt().Equal(want) {
		t.Errorf("ExpiresAt after Renew = %s, want %s", l.ExpiresAt(), want)
	}

	// A failure to ask the store is not a lost lease, and changes nothing.
	boom := errors.New("connection reset")
	d.set(false, boom, start.Add(20*time.Second))
	err := l.Renew(ctx)
	if !errors.Is(err, boom) || errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), `renewing key "k" (token 7)`) {
		t.Errorf("Renew with a store error: %v", err)
	}
	if want := start.Add(70 * time.Second); !l.ExpiresAt().Equal(want) {
		t.Errorf("ExpiresAt after a failed Renew = %s, want %s", l.ExpiresAt(), want)
	}

	// The store's "not current" is ErrLost.
	d.set(false, nil, start)
	if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew of a lease the store no longer has: %v, want ErrLost", err)
	}
	if err := l.Release(ctx); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), `releasing key "k" (token 7)`) {
		t.Errorf("Release of a lease the store no longer has: %v, want ErrLost", err)
	}

	// Release asks the store until it has said yes once; then it is a
	// no-op, and Renew is ErrLost without asking.
	d.set(true, nil, start)
	for range 3 {
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	renews := d.renews
	if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "released") {
		t.Errorf("Renew after Release: %v, want ErrLost saying it was released", err)
	}
	if d.releases != 2 || d.renews != renews {
		t.Errorf("driver got %d releases and %d renewals after the release, want 2 and 0", d.releases, d.renews-renews)
	}
}
