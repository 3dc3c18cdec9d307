package lease

import (
	"context"
	"fmt"
)

// Breaker is implemented by Lockers that can end a lease they did not hand
// out: an administrator's way to free a key whose holder is stuck (a
// process that hangs while its renewals still go through, say) or died
// with a long ttl. pglease, redislease and leasetest implement it.
//
// Breaking a live holder's lease does not stop that holder at once: its
// next Renew fails with ErrLost (Guard then cancels its function), and a
// fenced write (pglease.Fence) is refused from the moment of the break.
// Until then, it may still act as if it held the key; work done under a
// lease must tolerate that, as it must tolerate a paused holder.
type Breaker interface {
	// Break ends the current lease on key, whoever holds it, so that the
	// next Acquire succeeds with a larger token. It reports whether there
	// was a live lease to end; breaking a free key is not an error. A bad
	// key fails with ErrInvalid.
	Break(ctx context.Context, key string) (bool, error)
}

// Break ends the current lease on key with locker's Breaker; a locker that
// is not one (or does not wrap one, see Observe) fails with an error
// wrapping ErrInvalid.
func Break(ctx context.Context, locker Locker, key string) (bool, error) {
	b, ok := locker.(Breaker)
	if !ok {
		return false, fmt.Errorf("%w: breaking key %q: a %T cannot end another holder's lease (it is not a lease.Breaker)", ErrInvalid, key, locker)
	}
	if err := CheckKey(key); err != nil {
		return false, err
	}
	return b.Break(ctx, key)
}
