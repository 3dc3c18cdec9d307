// Package cloudstatus gives errors from gocloud.dev, Google API clients and
// gRPC an HTTP status, the one language package transfer's retry policy
// speaks (an HTTPStatusCode() int method). It lives outside transfer so
// that the core package links none of those clients; transfer/gocloudblob
// and transfer/gcscopy wrap the errors they return with it.
package cloudstatus
