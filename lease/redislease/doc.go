// Package redislease is the Redis lease.Locker, on go-redis v9.
//
// A lease is a Redis string, prefix + "{key}", set only while absent and
// with a PX expiry, to a value unique to the acquisition: a random nonce
// and the holder's name. Renew and Release are Lua scripts that compare
// that value before extending or deleting the key, so a holder whose lease
// expired can never extend or delete its successor's. Each call is one
// round trip (EVALSHA; EVAL once after a server restart).
//
// The token comes from INCR of a per-key counter, prefix + "{key}:token",
// in the same script that sets the lease, so taking the lease and getting
// the token are atomic. A new counter starts at the server's clock in
// microseconds, so tokens keep increasing even when Redis loses the counter
// (a restart without persistence, a failover to a replica that had not
// received the last writes), as long as the server clock does not step
// back. Such a loss also loses the lease itself, so a second holder may
// start before the first one's next renewal notices; fencing (see package
// lease) is what protects data then. For leases that survive restarts, run
// Redis with appendonly yes and appendfsync always.
//
// Both keys of a lease carry the same hash tag, so the scripts work on
// Redis Cluster too; a lease key that starts with "}" would break that.
// Counters are never deleted: one small key per lease key ever used.
//
// Every call returns when its context ends, whatever the client's options:
// go-redis honours a context's deadline only with ContextTimeoutEnabled,
// so Guard's RenewTimeout and ReleaseTimeout would otherwise stretch to
// the client's ReadTimeout times its retries.
package redislease
