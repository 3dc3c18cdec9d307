// Package wait holds Sleep, the context-aware pause that retry loops,
// backoffs and injected latencies across Ferry share.
package wait
