// Package transfertest holds test helpers for package transfer: MemSink, an
// in-memory Sink; conformance suites that any Transferer or Sink
// implementation should pass; and CheckBlobs, which verifies every blob in a
// bucket against its digest.
package transfertest
