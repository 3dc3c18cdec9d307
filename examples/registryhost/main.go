// Command registryhost is a small registry-side host that wires all of
// Ferry into one process, the way a container registry would:
//
//   - storage: opens PostgreSQL (a throwaway server by default,
//     -database-url for a real one) and applies Ferry's schema with
//     storage.Migrate (the import server's tables among them), then creates the
//     host's own table;
//   - bbm: registers a custom Work (fill registryhost_blobs.size_bucket from
//     size) and runs the asynchronous bbm.Worker in the background;
//   - enqueuer + lease: runs the enqueuer with the ParallelLoop strategy
//     under a pglease lease on the same database, every -enqueue-every and
//     after every notification, and serves the notification endpoint on a
//     loopback port (127.0.0.1:0 by default; the address is printed);
//   - transfer + transfer/importserver: generates a sample registry in the
//     distribution storage layout (transfertest) in a fileblob directory and
//     embeds Ferry's import server as the registry side: the enqueuer calls
//     its import API over HTTP (enqueuer.HTTPRegistry), it imports each
//     repository into a second fileblob directory with the transfer
//     importer, pre-import then final import, and delivers each outcome to
//     the notification endpoint from its outbox in Postgres;
//   - dashboard: serves Ferry's status page at /ferry/ on the same port
//     (migrations, imports, leases, the registry's outbox and live copies),
//     read-only until a browser opens /ferry-login?token=<-admin-token>,
//     which allows its pause, resume, retry and cancel buttons;
//   - routing: gives each kind of background job (enqueue, import,
//     notification, backfill) its queue from a routing rules file
//     (rules.yaml by default) and counts the jobs of each queue.
//
// SIGINT or SIGTERM shuts it down gracefully: the enqueuer starts nothing
// more and finishes its run, the bbm worker finishes its job, running import
// passes finish (up to -shutdown-timeout; after that they are cancelled,
// recorded as failed and notified, and the enqueuer retries them), the
// outcomes are delivered, the endpoint closes, leases are released, and
// every goroutine ends. A second signal kills the process.
// Run it again with the same -dir and -database-url and it carries on
// where it stopped, doing nothing twice.
//
//	go run ./examples/registryhost                     # runs until Ctrl-C
//	go run ./examples/registryhost -exit-when-done     # stops once everything is done
//	go run ./examples/registryhost -dir /tmp/rh -database-url postgres://... -import-delay 1s -v
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "registryhost:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one gets Go's default behaviour:
	// the process dies at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "registryhost:", err)
		os.Exit(1)
	}
}
