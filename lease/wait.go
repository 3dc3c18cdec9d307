package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
)

// WaitOptions tunes Wait. The zero value is ready to use.
type WaitOptions struct {
	// MinBackoff is the delay before the first retry. Default 20ms.
	MinBackoff time.Duration
	// MaxBackoff caps the delay, which doubles after every failed attempt.
	// Default 1s.
	MaxBackoff time.Duration
}

const (
	defaultMinBackoff = 20 * time.Millisecond
	defaultMaxBackoff = time.Second
)

// Wait acquires the lease on key, retrying while it is held (ErrHeld) with
// exponential backoff and jitter, until it gets it or ctx ends. Other
// errors (a bad key, a backend failure) end the wait at once. When ctx
// ends first the error wraps both ctx's error and the last ErrHeld.
func Wait(ctx context.Context, locker Locker, key string, ttl time.Duration, opts WaitOptions) (Lease, error) {
	minB, maxB := opts.MinBackoff, opts.MaxBackoff
	if minB <= 0 {
		minB = defaultMinBackoff
	}
	if maxB <= 0 {
		maxB = defaultMaxBackoff
	}
	policy := backoff.Policy{Base: minB, Max: max(maxB, minB)}
	attempt := 0
	var timer *time.Timer
	var held error // the last ErrHeld
	for {
		l, err := locker.Acquire(ctx, key, ttl)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, ErrHeld) {
			if held != nil && ctx.Err() != nil {
				return nil, fmt.Errorf("lease: waiting for key %q: %w (last attempt: %w)", key, ctx.Err(), held)
			}
			return nil, err
		}
		held = err
		// Equal jitter: waiters spread out but none retries much too early.
		delay := backoff.Equal(policy.Delay(attempt))
		attempt++
		if timer == nil {
			timer = time.NewTimer(delay)
			defer timer.Stop()
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lease: waiting for key %q: %w (last attempt: %w)", key, ctx.Err(), err)
		case <-timer.C:
		}
	}
}
