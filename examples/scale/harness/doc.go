// Package harness runs a seed-shaped registry import end to end, the way a
// registry migration runs in production, and measures it: the transfer
// importer does the work, the enqueuer decides what runs when, and every
// blob is verified at the end.
//
// # Workload
//
// Prepare generates a distribution-layout registry with transfertest's
// generator into a fileblob directory, deterministically from a
// transfertest.Spec, and caches it under os.TempDir()/ferry-scale-<hash>
// (a "complete" marker is written last; a partial generation is never
// used). SeedSpec has the seed's shape: 258 repositories with a long tail
// of sizes (the largest has ~5,900 tags, most have a few dozen), ~36,000
// tags, ~28,000 tagged manifests and ~136,000 tagged blobs of 64 B-16 KiB
// with shared base layers, and as much untagged data again. ScaledSpec
// shrinks it for tests.
//
// # Run
//
// Run wires the pieces as a registry would:
//
//   - source and destination are fileblob buckets behind
//     transfer/faultblob, which adds a latency to every object operation
//     (100 ms by default, like a remote object store) and fails 1 % of
//     them with HTTP 503;
//   - metadata goes to an in-memory Sink (transfertest.MemSink) behind a
//     1 ms round trip, as the seed's registry kept it in PostgreSQL;
//   - repositories are discovered from the layout and added to the
//     enqueuer's Store with their tag counts, largest first, so the longest
//     imports start first;
//   - Registry is an in-process enqueuer.RegistryClient: a start runs the
//     importer's pre-import or final import in the background and, when it
//     ends, notifies the enqueuer through its notification Handler, as the
//     registry's HTTP call would; it refuses starts beyond its capacity
//     (429) like the registry;
//   - the enqueuer (ParallelLoop, in-memory store and lease by default)
//     runs after every notification that changed a repository and every
//     second, until every repository is imported or skipped by the
//     tag-count policy.
//
// Progress is printed every few seconds (repositories, blobs, bytes, rate,
// ETA). The Result has the wall time, blobs per second, per-repository
// times, the repositories rejected by policy, retries, operation counts,
// peak RSS, goroutine counts and the ETA's error at 10 %, 50 % and 90 %
// of the blob transfers; BenchLines prints the figures against the issue's
// targets as `ferry-bench:` lines. The run ends with a check that the
// destination holds exactly the expected blobs, each hashing to its
// digest, with no stray or half-written object, and that the sink holds
// exactly the expected repositories, blob links, manifests and tags.
//
// # ETA
//
// The ETA follows each repository through the stages of its import (tag
// reads, planning, blob transfers, hand-off, final import), measuring
// each stage's rate on the repositories that go through it, and replays
// the enqueuer's schedule for what is left; see eta.go. A "blobs left /
// blob rate" estimate is printed next to it for comparison: with a long
// tail it promises the end long before the largest repository can finish.
//
// The examples/scale program runs the full scenario; so does
// BenchmarkSeedScaleImport (make bench). The package's tests run a 1/50
// version with a few milliseconds of latency.
package harness
