package lease

import (
	"context"
	"fmt"
	"time"
)

// Holding is what a backend knows about the lease on one key, read without
// taking it.
type Holding struct {
	Key string
	// Held reports whether a lease on the key is live: acquired, not
	// released and not expired by the backend's clock.
	Held bool
	// Holder names the holder (see each backend's Options.Holder) while
	// Held; empty when the backend does not know it.
	Holder string
	// Token is the fencing token of the live lease while Held; otherwise
	// the last token handed out for the key, or 0 when there was none (or
	// the backend does not know it).
	Token int64
	// ExpiresAt is when the live lease expires if it is not renewed, by the
	// backend's clock (converted to the local clock where the backend
	// counts a remaining time); zero when not Held.
	ExpiresAt time.Time
}

// Inspector is implemented by Lockers that can tell who holds a key
// without trying to take it: a status page or an operator's command must
// never acquire a key only to look at it, since a run that comes at that
// moment would find the key held. pglease, redislease and leasetest
// implement it, and Observe passes it through.
type Inspector interface {
	// Inspect reports the lease on key. A key that was never leased is
	// not held, not an error. A bad key fails with ErrInvalid.
	Inspect(ctx context.Context, key string) (Holding, error)
}

// Inspect reports the lease on key with locker's Inspector; a locker that
// is not one (or does not wrap one, see Observe) fails with an error
// wrapping ErrInvalid.
func Inspect(ctx context.Context, locker Locker, key string) (Holding, error) {
	in, ok := locker.(Inspector)
	if !ok {
		return Holding{}, fmt.Errorf("%w: inspecting key %q: a %T cannot tell who holds a key (it is not a lease.Inspector)", ErrInvalid, key, locker)
	}
	if err := CheckKey(key); err != nil {
		return Holding{}, err
	}
	return in.Inspect(ctx, key)
}

// Inspect implements Inspector when the observed Locker does (see
// lease.Inspect); inspecting is not an acquisition and is not reported.
func (o *observedLocker) Inspect(ctx context.Context, key string) (Holding, error) {
	return Inspect(ctx, o.l, key)
}
