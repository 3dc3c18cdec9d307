// Package backoff is the one exponential backoff that Ferry's retry loops
// share (bbm's idle waits, storage's transaction retries, lease waits, the
// enqueuer's registry client, transfer's retry policy, the import server's
// outbox): a capped exponential delay, and the two ways of jittering it.
package backoff
