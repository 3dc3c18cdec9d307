// Package leasetest helps test code that uses leases, and lease backends.
//
// For hosts' unit tests, Locker is an in-memory lease.Locker with an
// injectable clock (FakeClock: leases expire when the test says so) and
// failure injection (FailRenewals, FailAcquires):
//
//	clock := leasetest.NewFakeClock(time.Now())
//	locker := leasetest.NewLocker(leasetest.Options{Clock: clock})
//
// For backends, Run is the conformance suite that every lease.Locker
// passes (this package's Locker, pglease and redislease do):
//
//	func TestConformance(t *testing.T) {
//		leasetest.Run(t, func(t *testing.T) lease.Locker { return newMyLocker(t) })
//	}
//
// Backends' own tests have more: Contend and ContendAcrossProcesses check
// mutual exclusion under load, between goroutines and between OS
// processes; Outage (with Contender) what losing the store does to a
// guarded holder; CheckRoundTrips that each operation is one request (an
// Acquire of a held key at most RoundTrips.HeldAcquire);
// CheckHolderNames what HeldErrors say. BenchAcquireRelease,
// BenchContended and Medians help write benchmarks.
package leasetest
