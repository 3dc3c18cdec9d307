// Package faultblob wraps a transfer.Bucket so that its operations become slow
// or fail on purpose. It is meant for tests and benchmarks of code that has
// to survive a flaky object store: 503s, throttling, reads that end early,
// uploads that fail on commit, and per-operation latency such as the 20 ms a
// cross-region bucket adds.
//
// Faults are chosen by an Injector from the operation, the key and how many
// times that operation has been called on that key, so a scenario is the
// same however goroutines are scheduled:
//
//	b, stats := faultblob.Wrap(gocloudblob.New(mem), faultblob.Options{
//		Latency: 20 * time.Millisecond,
//		Inject:  faultblob.FailFirst(1, faultblob.Unavailable, faultblob.OpRead),
//	})
//
// The wrapper is itself a transfer.Bucket; its Unwrap method returns the
// wrapped one (so gocloudblob.Unwrap and transfer/gcscopy see through it).
// Injected failures are *Error values with an HTTPStatusCode method, which
// transfer.IsRetryable classifies like a real service's.
package faultblob
