// Package faultblob wraps a *blob.Bucket so that its operations become slow
// or fail on purpose. It is meant for tests and benchmarks of code that has
// to survive a flaky object store: 503s, throttling, reads that end early,
// uploads that fail on commit, and per-operation latency such as the 20 ms a
// cross-region bucket adds.
//
// Faults are chosen by an Injector from the operation, the key and how many
// times that operation has been called on that key, so a scenario is the
// same however goroutines are scheduled:
//
//	b := faultblob.Wrap(mem, faultblob.Options{
//		Latency: 20 * time.Millisecond,
//		Inject:  faultblob.FailFirst(1, faultblob.Unavailable, faultblob.OpRead),
//	})
//
// The wrapper is itself a gocloud driver, so the result is an ordinary
// *blob.Bucket. As and ErrorAs are forwarded to the wrapped bucket.
package faultblob
