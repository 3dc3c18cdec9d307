package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// GuardOptions tunes GuardWith. The zero value gives Guard's behaviour.
type GuardOptions struct {
	// RenewEvery is the time between renewals. It must be shorter than the
	// ttl. Default ttl/3.
	RenewEvery time.Duration
	// RenewTimeout is how long one renewal may take. A renewal that has
	// not answered by then counts as failed (fn is stopped) even if the
	// backend is still retrying, so that fn has time to stop before the
	// lease can expire. Default RenewEvery; never later than the expiry.
	RenewTimeout time.Duration
	// Wait, when not nil, makes GuardWith wait for a held key as Wait does
	// instead of failing with ErrHeld.
	Wait *WaitOptions
	// ReleaseTimeout bounds the final Release, which runs even when ctx is
	// already done. Default 5s.
	ReleaseTimeout time.Duration
	// Logger receives lost leases and failed renewals and releases.
	// Default: slog.Default().
	Logger *slog.Logger
}

const defaultReleaseTimeout = 5 * time.Second

// Guard runs fn while holding the lease on key; see GuardWith.
func Guard(ctx context.Context, locker Locker, key string, ttl time.Duration, fn func(ctx context.Context, l Lease) error) error {
	return GuardWith(ctx, locker, key, ttl, GuardOptions{}, fn)
}

// GuardWith acquires the lease on key (failing with an error that wraps
// ErrHeld when it is taken, unless opts.Wait is set), runs fn, and releases
// the lease when fn returns or panics.
//
// While fn runs the lease is renewed in the background every
// opts.RenewEvery. fn's context is cancelled at once, with the reason as
// its cause (context.Cause), when
//   - a renewal finds the lease lost: the error wraps ErrLost;
//   - a renewal fails, or does not answer within opts.RenewTimeout: the
//     error wraps ErrRenewFailed (and the renewal's error, if it returned);
//   - the lease reaches its expiry, by the local clock, without a
//     successful renewal: the error wraps ErrLost.
//
// In those cases GuardWith returns that error, with fn's own error wrapped
// as well, even when fn returned nil: fn may have done part of its work
// without the lease. Otherwise it returns fn's error unchanged; or, when
// the final Release shows that the lease had been lost, an error wrapping
// ErrLost; or a Release failure joined to fn's error. A panic in fn
// propagates after the release. The goroutines GuardWith starts have
// ended when it returns.
func GuardWith(ctx context.Context, locker Locker, key string, ttl time.Duration, opts GuardOptions, fn func(ctx context.Context, l Lease) error) error {
	if err := Check(key, ttl); err != nil {
		return fmt.Errorf("lease: guard on key %q: %w", key, err)
	}
	every := opts.RenewEvery
	if every <= 0 {
		every = ttl / 3
	}
	if every >= ttl {
		return fmt.Errorf("%w: guard on key %q: RenewEvery %s is not shorter than the ttl %s", ErrInvalid, key, every, ttl)
	}
	timeout := opts.RenewTimeout
	if timeout <= 0 {
		timeout = every
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	releaseTimeout := opts.ReleaseTimeout
	if releaseTimeout <= 0 {
		releaseTimeout = defaultReleaseTimeout
	}

	// The lease's local expiry counts from when the successful Acquire was
	// sent; Guard keeps its own, whatever the backend's ExpiresAt says.
	timed := &timedLocker{Locker: locker}
	var l Lease
	var err error
	if opts.Wait != nil {
		l, err = Wait(ctx, timed, key, ttl, *opts.Wait)
	} else {
		l, err = timed.Acquire(ctx, key, ttl)
	}
	if err != nil {
		return fmt.Errorf("lease: guard on key %q: %w", key, err)
	}
	sent := timed.sent

	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	h := &hold{l: l, ttl: ttl, every: every, timeout: timeout, cancel: cancel, logger: logger,
		stop: make(chan struct{}), changed: make(chan struct{}, 1), expiry: sent.Add(ttl)}
	base := context.WithoutCancel(ctx)
	h.wg.Go(func() { h.renew(base) })
	h.wg.Go(h.watch)

	finished := false
	defer func() {
		if !finished { // fn panicked: still stop renewing and release
			h.finish()
			h.release(ctx, releaseTimeout)
		}
	}()
	fnErr := fn(fnCtx, l)
	finished = true
	h.finish()
	relErr := h.release(ctx, releaseTimeout)

	if cause := h.failure(); cause != nil {
		if fnErr != nil {
			return fmt.Errorf("%w (fn returned: %w)", cause, fnErr)
		}
		return cause
	}
	switch {
	case relErr == nil:
		return fnErr
	case errors.Is(relErr, ErrLost):
		lost := fmt.Errorf("lease: guard on key %q (token %d): the lease was lost while fn ran: %w", key, l.Token(), relErr)
		if fnErr != nil {
			return fmt.Errorf("%w (fn returned: %w)", lost, fnErr)
		}
		return lost
	default:
		return errors.Join(fnErr, fmt.Errorf("lease: guard on key %q (token %d): release: %w", key, l.Token(), relErr))
	}
}

// timedLocker records when its last Acquire was sent.
type timedLocker struct {
	Locker
	sent time.Time
}

func (t *timedLocker) Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	t.sent = time.Now()
	return t.Locker.Acquire(ctx, key, ttl)
}

// hold keeps a lease renewed while fn runs and cancels fn's context when
// the lease cannot be kept.
type hold struct {
	l       Lease
	ttl     time.Duration
	every   time.Duration
	timeout time.Duration
	cancel  context.CancelCauseFunc
	logger  *slog.Logger
	stop    chan struct{} // closed when fn has returned
	changed chan struct{} // wakes watch when the deadlines below move
	wg      sync.WaitGroup

	mu       sync.Mutex
	expiry   time.Time // by the local clock; see Lease.ExpiresAt
	answerBy time.Time // deadline of the renewal in flight; zero if none
	cause    error     // why fn was stopped, if it was
	finished bool
}

// renew renews the lease every h.every until stop is closed or a renewal
// fails. base carries ctx's values but not its cancellation: a caller's
// cancellation reaches fn, and the lease must stay renewed until fn returns.
func (h *hold) renew(base context.Context) {
	t := time.NewTimer(h.every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		sent := time.Now()
		h.mu.Lock()
		h.answerBy = sent.Add(h.timeout)
		if h.expiry.Before(h.answerBy) {
			h.answerBy = h.expiry
		}
		deadline := h.answerBy
		h.mu.Unlock()
		h.poke()
		rctx, cancel := context.WithDeadline(base, deadline)
		err := h.l.Renew(rctx)
		cancel()
		if err != nil {
			select {
			case <-h.stop: // fn is done; the outcome no longer matters
				return
			default:
			}
			if errors.Is(err, ErrLost) {
				h.fail(fmt.Errorf("lease: guard on key %q (token %d): the lease was lost, found at renewal: %w", h.l.Key(), h.l.Token(), err))
			} else {
				h.fail(fmt.Errorf("lease: guard on key %q (token %d): %w: %w", h.l.Key(), h.l.Token(), ErrRenewFailed, err))
			}
			return
		}
		h.mu.Lock()
		h.expiry = sent.Add(h.ttl)
		h.answerBy = time.Time{}
		h.mu.Unlock()
		h.poke()
		t.Reset(h.every)
	}
}

func (h *hold) poke() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// watch stops fn when the lease reaches its local expiry, or a renewal its
// deadline, whatever the backend's client does with the renewal's context:
// a stuck renewal must not leave fn running on a lease that another holder
// may soon get.
func (h *hold) watch() {
	t := time.NewTimer(time.Hour) // reset below before any use
	defer t.Stop()
	for {
		h.mu.Lock()
		expiry, answerBy := h.expiry, h.answerBy
		h.mu.Unlock()
		now := time.Now()
		switch {
		case !now.Before(expiry):
			h.fail(fmt.Errorf("lease: guard on key %q (token %d): %w: it expired at %s without a successful renewal",
				h.l.Key(), h.l.Token(), ErrLost, expiry.Format(time.RFC3339Nano)))
			return
		case !answerBy.IsZero() && !now.Before(answerBy):
			h.fail(fmt.Errorf("lease: guard on key %q (token %d): %w: no answer within %s",
				h.l.Key(), h.l.Token(), ErrRenewFailed, h.timeout))
			return
		}
		next := expiry
		if !answerBy.IsZero() && answerBy.Before(next) {
			next = answerBy
		}
		t.Reset(time.Until(next))
		select {
		case <-h.stop:
			return
		case <-h.changed: // Reset (Go 1.23 timers) drops a stale tick
		case <-t.C:
		}
	}
}

// fail records the first reason to stop fn and cancels fn's context.
func (h *hold) fail(cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cause != nil || h.finished {
		return
	}
	h.cause = cause
	h.cancel(cause)
	h.logger.Warn("lease guard stopped its function", "key", h.l.Key(), "token", h.l.Token(), "error", cause)
}

func (h *hold) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cause
}

// finish stops the renewals and the watchdog and waits for them to end.
// From here on nothing cancels fn or changes the outcome.
func (h *hold) finish() {
	h.mu.Lock()
	h.finished = true
	h.mu.Unlock()
	close(h.stop)
	h.wg.Wait()
}

func (h *hold) release(ctx context.Context, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := h.l.Release(rctx)
	if err != nil {
		h.logger.Warn("lease guard could not release its lease", "key", h.l.Key(), "token", h.l.Token(), "error", err)
	}
	return err
}
