// Package benchreport turns the `ferry-bench:` lines that Ferry's
// benchmarks print into one table: each benchmark's figure, its baseline's
// from the same run, the ratio, the target and whether it was met.
//
// A line looks like
//
//	ferry-bench: <name> ferry=<figure> baseline=<figure> ratio=<number> target<=<number> <free notes>
//
// with target<= or target>= (or no target), and any further key=value
// pairs kept as notes. `make bench` runs every benchmark and then
// `go run ./internal/benchreport/cmd bench.out`.
package benchreport
