// Package leasetest helps test code that uses leases: Locker is an
// in-memory lease.Locker with an injectable clock (FakeClock) and failure
// injection, and Run is the conformance suite that every lease.Locker
// implementation must pass:
//
//	func TestConformance(t *testing.T) {
//		leasetest.Run(t, func(t *testing.T) lease.Locker { return newMyLocker(t) })
//	}
package leasetest
