package main

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"

	"github.com/ferryhq/ferry/routing"
)

// defaultRules are the routing rules used without -rules.
//
//go:embed rules.yaml
var defaultRules string

// jobKind is a kind of background job the host runs.
type jobKind string

const (
	kindEnqueue      jobKind = "enqueue"      // one enqueuer run
	kindImport       jobKind = "import"       // one pass of one repository (registry side)
	kindNotification jobKind = "notification" // telling the endpoint an import finished
	kindBackfill     jobKind = "backfill"     // the bbm worker's batches
)

// jobKinds lists the kinds in the order they are printed.
func jobKinds() []jobKind {
	return []jobKind{kindEnqueue, kindImport, kindNotification, kindBackfill}
}

// jobWorker is the routing metadata of each kind, as a Rails/Sidekiq
// deployment would keep it in all_queues.yml; the routing rules select on it.
func jobWorker(k jobKind) routing.Worker {
	switch k {
	case kindEnqueue:
		return routing.Worker{WorkerName: "Registry::EnqueuerWorker", QueueName: "cronjob:registry_enqueuer",
			QueueNamespace: "cronjob", FeatureCategory: "container_registry", Urgency: "low", ResourceBoundary: "unknown", Idempotent: true}
	case kindImport:
		return routing.Worker{WorkerName: "Registry::ImportWorker", QueueName: "registry_import",
			FeatureCategory: "container_registry", Urgency: "low", ResourceBoundary: "memory",
			HasExternalDependencies: true, Tags: []string{"import"}, Idempotent: true}
	case kindNotification:
		return routing.Worker{WorkerName: "Registry::NotificationWorker", QueueName: "registry_notification",
			FeatureCategory: "container_registry", Urgency: "high", ResourceBoundary: "cpu", Idempotent: true}
	case kindBackfill:
		return routing.Worker{WorkerName: "Database::BatchedBackgroundMigrationWorker", QueueName: "database_batched_background_migration",
			FeatureCategory: "database", Urgency: "throttled", ResourceBoundary: "cpu", Idempotent: true}
	}
	return routing.Worker{}
}

// queues routes each job kind to a queue by the routing rules and counts
// the jobs of each queue.
type queues struct {
	rulesFrom string
	byKind    map[jobKind]string
	jobs      map[string]*atomic.Int64 // jobs run per queue
}

// loadRules reads the rules file, or the embedded rules when path is "".
func loadRules(path string) (data []byte, from string, err error) {
	if path == "" {
		return []byte(defaultRules), "embedded rules.yaml", nil
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading routing rules: %w", err)
	}
	return data, path, nil
}

func newQueues(rules []byte, from string) (*queues, error) {
	parsed, err := routing.ParseRules(rules)
	if err != nil {
		return nil, fmt.Errorf("routing rules in %s: %w", from, err)
	}
	router, err := routing.NewRouter(parsed, nil)
	if err != nil {
		return nil, fmt.Errorf("routing rules in %s: %w", from, err)
	}
	q := &queues{rulesFrom: from, byKind: map[jobKind]string{}, jobs: map[string]*atomic.Int64{}}
	for _, k := range jobKinds() {
		name := router.Route(jobWorker(k))
		q.byKind[k] = name
		if q.jobs[name] == nil {
			q.jobs[name] = new(atomic.Int64)
		}
	}
	return q, nil
}

// queue returns the queue of kind.
func (q *queues) queue(k jobKind) string { return q.byKind[k] }

// count records a job of kind k on its queue. The jobs run where their
// package runs them (the enqueuer loop, the import server, the bbm
// worker); the queues name and count them.
func (q *queues) count(k jobKind) { q.jobs[q.byKind[k]].Add(1) }

// printTable writes which queue each kind goes to.
func (q *queues) printTable(out io.Writer) {
	fmt.Fprintf(out, "routing (%s):\n", q.rulesFrom)
	for _, k := range jobKinds() {
		fmt.Fprintf(out, "  %-12s -> %-40s (%s)\n", k, q.byKind[k], jobWorker(k).WorkerName)
	}
}

// printCounts writes how many jobs each queue ran.
func (q *queues) printCounts(out io.Writer) {
	names := make([]string, 0, len(q.jobs))
	for name := range q.jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Fprint(out, "jobs per queue:")
	for _, name := range names {
		fmt.Fprintf(out, " %s=%d", name, q.jobs[name].Load())
	}
	fmt.Fprintln(out)
}
