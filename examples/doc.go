// Package examples holds runnable programs that show how a registry wires
// Ferry. Each is a main package with a test that runs it; run them from the
// repository root:
//
//	go run ./examples/quickstart      # start here
//
// The programs:
//
//   - quickstart: Ferry's main job end to end on embedded defaults, in a few
//     seconds: generates a small registry in the distribution storage layout,
//     imports it into another directory through the enqueuer (capacity,
//     lease, notifications) with every blob verified, backfills a table with
//     bbm, and prints a summary. Uses a throwaway PostgreSQL when the machine
//     has the binaries and Ferry's in-memory stores otherwise (-no-postgres
//     forces them; -database-url uses a real server; -keep keeps the files;
//     -serve then serves Ferry's dashboard on the run's stores).
//   - registryhost: a small registry-side host that wires every package into
//     one long-running process: storage.Migrate, a custom bbm Work on the
//     background worker, the enqueuer's ParallelLoop under a pglease lease,
//     the notification endpoint on a loopback port, the registry side as
//     Ferry's embedded import server (transfer/importserver) over the
//     transfer importer, called over HTTP, routing rules that pick each job
//     kind's queue, and Ferry's dashboard at /ferry/. SIGINT or SIGTERM
//     shuts it down gracefully; started again, it resumes and does nothing
//     twice. Its tests signal it as a child process and restart it, and
//     drive its dashboard with a headless Chromium.
//   - backfill: a batched background migration of 1,000,000 rows on a
//     throwaway PostgreSQL with bbm's SyncWorker, adaptive batch sizes, a
//     progress line and a check of every row.
//   - blobcopy: copies a registry's storage between two gocloud buckets
//     (file://, mem://, gs://) with the transfer importer in two passes, with
//     tag policies, dry runs and a per-repository report.
//   - routing: reads all_queues.yml worker metadata and two routing rules
//     files, prints the routing table, the workers that move and the
//     zero-downtime rollout plan.
//   - scale: the seed-scale migration (258 repositories, ~136,000 blobs)
//     through the enqueuer and the transfer importer on slow, flaky buckets,
//     with progress, verification and ferry-bench: figures; -scale shrinks it.
//   - tracing: OpenTelemetry spans and Prometheus metrics from Ferry's
//     Observer hooks, recorded by the host (offline, on the in-memory fakes).
package examples
