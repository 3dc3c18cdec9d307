// Package enqueuertest holds test doubles for package enqueuer: Store, an
// in-memory enqueuer.Store; Registry, an in-memory enqueuer.RegistryClient
// with scriptable latency, capacity and failures, and RegistryHandler to
// serve it over HTTP; and TestStore, the conformance suite every Store must
// pass.
package enqueuertest
