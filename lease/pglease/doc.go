// Package pglease is the Postgres lease.Locker: leases live in the
// ferry_leases table (created by storage.Migrate), one row per key, and
// expire by the database's clock only, so clients' clocks never decide who
// holds a key. Acquire of a free key, Renew and Release are one statement,
// and one round trip, each (a key's very first Acquire takes three: it
// finds no row, finds no holder, then inserts the row); an Acquire that finds the key held reads who holds it with a second
// statement and takes no lock, so contenders cost the holder nothing.
//
// Fence makes a write in a caller's transaction conditional on a lease
// still being current: it locks the key's row for the rest of the
// transaction, so a newer holder cannot take over until the write has
// committed or rolled back. FenceWith does the same and reports each check
// to a lease.Observer, for metrics of fenced-off writes.
package pglease
