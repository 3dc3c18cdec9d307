package lease

import (
	"context"
	"time"
)

// Locker hands out exclusive, expiring leases on string keys.
//
// Implementations: pglease (Postgres), redislease (Redis) and
// leasetest.Locker (in memory). All of them pass leasetest.Run. A new
// backend implements Acquire and a Driver, and gets its Lease from New
// (see "Writing a backend" in the package documentation).
type Locker interface {
	// Acquire takes the lease on key for ttl, or fails at once: it never
	// waits for a holder to let go (see Wait for that). When the key is
	// held the error wraps ErrHeld (and is a *HeldError naming the key and,
	// when the backend knows it, the holder). A bad key or ttl is an error
	// wrapping ErrInvalid.
	Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, error)
}

// Lease is one acquisition of a key. It is safe for concurrent use.
type Lease interface {
	// Key is the key the lease is on.
	Key() string
	// Token is the fencing token of this acquisition: it is greater than
	// the token of every earlier acquisition of the same key, so a store
	// that remembers the highest token it has seen can refuse writes from
	// a holder that has been replaced (see the package documentation).
	Token() int64
	// ExpiresAt is, by the local clock, the time until which the lease is
	// certainly held: the moment the last successful Acquire or Renew
	// request was sent, plus the ttl. The backend's own expiry is at or
	// after it.
	ExpiresAt() time.Time
	// Renew extends the lease by its ttl from now. It fails with ErrLost
	// when the lease has expired, was released, or belongs to someone
	// else; any other error (a network failure, say) leaves the lease as
	// it was, expiring at ExpiresAt.
	Renew(ctx context.Context) error
	// Release gives the lease up so that another holder can take it at
	// once. Releasing again is a no-op returning nil; releasing a lease
	// that was lost (it expired or someone else took it) fails with
	// ErrLost and changes nothing.
	Release(ctx context.Context) error
}
