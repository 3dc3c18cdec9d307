// Command routing shows Ferry's routing package on a deployment's own files:
// it reads all_queues.yml worker metadata and two routing rules files (the
// rules deployed now and the rules to roll out), then prints the routing
// table under the new rules, the workers whose queue changes, and the
// zero-downtime rollout plan.
//
// From the repository root, with the sample data:
//
//	go run ./examples/routing
//
// or with your own files:
//
//	go run ./examples/routing -workers app/workers/all_queues.yml -workers ee/app/workers/all_queues.yml \
//	    -old rules_now.json -new rules_next.yml -default-queue default
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/routing"
)

func main() {
	err := run(os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h: usage was printed.
	case err != nil:
		fmt.Fprintln(os.Stderr, "routing:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

// String implements flag.Value.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value by appending one more value.
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// run is main without the process: it parses args, reads the files and writes
// the report to out.
func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("routing", flag.ContinueOnError)
	var workerFiles listFlag
	fs.Var(&workerFiles, "workers", "all_queues.yml file; repeat to merge several (default: the sample files in routing/testdata)")
	oldRules := fs.String("old", "routing/testdata/rules_before.yml", "routing rules deployed now: a JSON or YAML list of [query, queue] pairs")
	newRules := fs.String("new", "routing/testdata/rules_after.json", "routing rules to roll out, same format")
	defaultQueue := fs.String("default-queue", "", `queue for workers no rule matches; empty means each worker's generated queue name (Rails deployments use "default")`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(workerFiles) == 0 {
		workerFiles = listFlag{"routing/testdata/all_queues.yml", "routing/testdata/ee_all_queues.yml"}
	}

	workers, err := readWorkers(workerFiles)
	if err != nil {
		return err
	}
	opts := &routing.Options{DefaultQueue: *defaultQueue}
	before, err := readRouter(*oldRules, opts)
	if err != nil {
		return err
	}
	after, err := readRouter(*newRules, opts)
	if err != nil {
		return err
	}

	oldTable, err := before.Table(workers)
	if err != nil {
		return fmt.Errorf("%s: %w", *oldRules, err)
	}
	newTable, err := after.Table(workers)
	if err != nil {
		return fmt.Errorf("%s: %w", *newRules, err)
	}
	plan, err := routing.Plan(before, after, workers)
	if err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d workers from %s\n", len(workers), strings.Join(baseNames(workerFiles), ", "))
	fmt.Fprintf(&b, "\n== Routing table under %s ==\n", filepath.Base(*newRules))
	b.WriteString(newTable.String())
	fmt.Fprintf(&b, "\n== Diff %s -> %s ==\n", filepath.Base(*oldRules), filepath.Base(*newRules))
	changes := routing.Diff(oldTable, newTable)
	for _, c := range changes {
		fmt.Fprintf(&b, "%s\n", c)
	}
	if len(changes) == 0 {
		b.WriteString("no worker changes queue\n")
	}
	b.WriteString("\n== Rollout plan ==\n")
	b.WriteString(plan.String())
	_, err = io.WriteString(out, b.String())
	return err
}

func readWorkers(paths []string) ([]routing.Worker, error) {
	lists := make([][]routing.Worker, 0, len(paths))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		ws, err := routing.ReadWorkers(f)
		_ = f.Close() // read-only: a close error loses nothing
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		lists = append(lists, ws)
	}
	workers, err := routing.MergeWorkers(lists...)
	if err != nil {
		return nil, fmt.Errorf("merging %s: %w", strings.Join(paths, ", "), err)
	}
	return workers, nil
}

func readRouter(path string, opts *routing.Options) (*routing.Router, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rules, err := routing.ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := routing.NewRouter(rules, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}
