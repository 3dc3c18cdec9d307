package lease

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrHeld means the key is leased to someone else. Acquire's errors
	// wrap it; see HeldError for the details.
	ErrHeld = errors.New("lease: held by another holder")

	// ErrLost means a lease is no longer held: it expired, it was released,
	// or another holder took the key. Renew and Release wrap it, and so
	// does Guard when it stopped fn because the lease was lost.
	ErrLost = errors.New("lease: lost")

	// ErrFenced means a fenced write was refused because its token is no
	// longer the key's current one: a newer holder has taken over, or the
	// lease expired or was released.
	ErrFenced = errors.New("lease: fenced off")

	// ErrRenewFailed means Guard could not renew a lease (a network or
	// server error) and stopped fn, because the lease would have expired
	// without renewal. The lease may still be held until it expires.
	ErrRenewFailed = errors.New("lease: renewal failed")

	// ErrInvalid reports a key or ttl that no Locker accepts.
	ErrInvalid = errors.New("lease: invalid argument")
)

// HeldError is the error Acquire returns when the key is held. It wraps
// ErrHeld.
type HeldError struct {
	Key string
	// Holder names the current holder (see each backend's Options.Holder);
	// empty when the backend does not know it.
	Holder string
	// ExpiresAt is when the current lease expires if it is not renewed,
	// by the backend's clock; zero when unknown.
	ExpiresAt time.Time
}

// Error says which key is held, and by whom and until when if known.
func (e *HeldError) Error() string {
	msg := fmt.Sprintf("lease: key %q is held", e.Key)
	if e.Holder != "" {
		msg += " by " + e.Holder
	}
	if !e.ExpiresAt.IsZero() {
		msg += " until " + e.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Unwrap() error { return ErrHeld }
