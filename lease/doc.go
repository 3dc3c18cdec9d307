// Package lease gives a process exclusive, expiring leases on string keys,
// each acquisition stamped with a fencing token, on Postgres (pglease),
// Redis (redislease) or in memory (leasetest).
//
// # Leases
//
// A Locker's Acquire either takes the lease on a key for a ttl or fails at
// once with an error wrapping ErrHeld that names the key and, when known,
// the holder. Wait retries with backoff until it gets the lease. A Lease is
// kept by calling Renew before it expires and ended by Release; both fail
// with ErrLost once the lease has expired or has been taken by another
// holder. Keys are 1 to MaxKeyLen (255) bytes of UTF-8; ttls range from
// MinTTL (1ms) to MaxTTL (24h). Anything else fails with ErrInvalid.
//
// Guard is the usual way to use a lease: it acquires the key, runs a
// function, renews the lease in the background every ttl/3, cancels the
// function's context the moment a renewal fails or the lease is lost (or
// would expire, by the local clock, because a renewal is stuck), and
// releases the lease at the end, panic or not:
//
//	err := lease.Guard(ctx, locker, "enqueuer", 30*time.Second,
//		func(ctx context.Context, l lease.Lease) error {
//			return work(ctx, l.Token())
//		})
//	switch {
//	case errors.Is(err, lease.ErrHeld): // another instance is running
//	case errors.Is(err, lease.ErrLost), errors.Is(err, lease.ErrRenewFailed):
//		// work was stopped part way; it must be safe to redo
//	}
//
// # Fencing
//
// No lease can stop a holder that is paused (a long GC, a frozen VM, a
// partition) from waking up after its lease expired and writing as if it
// still held it, while a new holder is already at work. Fencing tokens
// close that hole: every acquisition of a key gets a token larger than all
// earlier ones, and each write carries the writer's token. The store that
// is written to accepts a write only if no larger token has been seen for
// the key, checked atomically with the write itself.
//
// With Postgres, pglease.Fence does the check inside the transaction that
// makes the write: it locks the key's lease row and fails with ErrFenced
// unless the token is still the current, unexpired one. A newer holder
// cannot take the key until that transaction ends, so a write that passed
// the fence is ordered before any later holder's writes:
//
//	err := storage.InTx(ctx, pool, func(tx pgx.Tx) error {
//		if err := pglease.Fence(ctx, tx, l.Key(), l.Token()); err != nil {
//			return err // errors.Is(err, lease.ErrFenced): stop, we were replaced
//		}
//		_, err := tx.Exec(ctx, `UPDATE ...`)
//		return err
//	})
//
// For other stores, keep the highest token written next to the data and
// make every write conditional on it, in one atomic operation of that store:
//
//   - SQL: UPDATE t SET ..., fence_token = $tok WHERE id = $id AND fence_token <= $tok
//     (no row updated means a newer holder has written);
//   - Redis: a Lua script that compares the stored token before writing;
//   - object stores: a conditional put (if-generation-match / If-Match) on
//     a small object that records the token, written before the data;
//   - a service you call: pass the token and have it reject older ones.
//
// A lease without fencing still stops a second holder while processes and
// networks behave; fencing is what keeps the data right when they do not.
//
// # Writing a backend
//
// A backend is a Locker whose Acquire does the store's work and then hands
// the acquisition to New, which returns the Lease. Everything a Lease does
// apart from talking to the store is New's: keeping the key, token and
// local expiry, refusing to renew a released lease, making Release
// idempotent, and the errors (ErrLost, and what failed on which key and
// token). The backend supplies the store's two other operations as a
// Driver:
//
//	type Driver interface {
//		Renew(ctx context.Context, key string, token int64, ttl time.Duration) (ok bool, err error)
//		Release(ctx context.Context, key string, token int64) (ok bool, err error)
//	}
//
// ok is false when the lease is no longer the key's current one (New turns
// that into ErrLost); err is for a store that could not be asked. A Driver
// may serve many leases (pglease's Locker does: key and token identify the
// row) or one acquisition (redislease's holds the random value its
// scripts compare). A Driver that is also a Clock times renewals by it.
//
// What each operation must guarantee in the store:
//
//   - Acquire is atomic: it takes the key only when it is free or its lease
//     has expired, by the store's clock, and gives the acquisition a token
//     larger than every earlier one on the key, even across the store's
//     restarts; otherwise it fails with a *HeldError. Call CheckKey and
//     CheckTTL (or Check) first, and read the time for New just before
//     sending the request.
//   - Renew and Release act only if the token is still the key's current,
//     unexpired lease, checked atomically with the change.
//   - Acquire of a free key, Renew and Release are each one round trip,
//     so that a lease costs what the store's cheapest conditional write
//     costs; an Acquire that finds the key held may take a second one to
//     read who holds it.
//
// leasetest.Run is the conformance suite a backend must pass; leasetest
// also has checks for round trips, holder names and outages, and
// benchmark helpers. leasetest's own Locker, in memory, is a small
// complete backend to start from.
//
// # Observability
//
// Observe wraps any Locker so that an Observer is told about every Acquire
// (acquired, held or failed), every Renew (with its latency) and the end of
// every lease (released, lost or a failed release); pglease.FenceWith
// reports fence checks to the same Observer. Hooks have pgx's tracer
// shape, like every Ferry package's: Acquire and Renew get
// AcquireStart/AcquireEnd and RenewStart/RenewEnd, the backend's call runs
// under the context Start returns (so a span started there is the parent
// of the backend's own), and End gets that context back; a lease's end and
// fence checks are single calls. This is for metrics and
// tracing without a metrics dependency here: package prommetrics implements
// Observer with Prometheus.
//
//	locker := lease.Observe(pglease.New(storage.FromPool(pool), pglease.Options{}), metrics.Lease())
package lease
