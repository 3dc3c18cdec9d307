// Package bbm runs batched background migrations: it backfills or rewrites
// a large Postgres table online, a small range of keys at a time.
package bbm
