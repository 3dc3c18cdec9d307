// Command routing shows Ferry's routing packages on a deployment's own files:
// it reads all_queues.yml worker metadata (GitLab keeps two files, app/ and
// ee/), lints the routing rules to roll out and says how GitLab reads each
// problem, lists the queues a sidekiq-cluster --queue-selector would listen
// to, prints the routing table, the workers whose queue changes and the
// zero-downtime rollout plan, and, given a Redis, counts (or moves) the
// Sidekiq jobs waiting in the old queues.
//
// From the repository root, with the sample data:
//
//	go run ./examples/routing
//
// with GitLab's own metadata and your rules:
//
//	go run ./examples/routing -workers app/workers/all_queues.yml -workers ee/app/workers/all_queues.yml \
//	    -old rules_now.json -new rules_next.yml -selector 'feature_category=global_search' -negate
//
// and against the Sidekiq Redis (a dry run unless -move is given):
//
//	go run ./examples/routing -redis-url redis://localhost:6379/0 -namespace resque:gitlab:
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/routing"
	"github.com/ferryhq/ferry/routing/sidekiqmove"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
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

// config is the parsed command line.
type config struct {
	workerFiles  listFlag
	oldRules     string
	newRules     string
	defaultQueue string
	strict       bool
	selector     string
	negate       bool
	redisURL     string
	namespace    string
	move         bool
	rate         float64
}

func parseFlags(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("routing", flag.ContinueOnError)
	fs.Var(&c.workerFiles, "workers", "all_queues.yml file; repeat to merge several (default: the sample files in routing/testdata)")
	fs.StringVar(&c.oldRules, "old", "routing/testdata/rules_before.yml", "routing rules deployed now: a JSON or YAML list of [selector, queue] pairs")
	fs.StringVar(&c.newRules, "new", "routing/testdata/rules_after.json", "routing rules to roll out, same format; linted")
	fs.StringVar(&c.defaultQueue, "default-queue", "", `queue for workers no rule matches; empty (GitLab's behaviour) means each worker's generated queue name`)
	fs.BoolVar(&c.strict, "strict", false, "refuse rules GitLab accepts silently but that are almost certainly mistakes")
	fs.StringVar(&c.selector, "selector", "feature_category=global_search&urgency=throttled", "list the queues sidekiq-cluster --queue-selector would listen to for this selector (empty: skip)")
	fs.BoolVar(&c.negate, "negate", false, "with -selector: the queues it does not select (sidekiq-cluster --negate)")
	fs.StringVar(&c.redisURL, "redis-url", "", "Sidekiq's Redis (redis://host:port/db or unix:///path/redis.sock): count the jobs that move")
	fs.StringVar(&c.namespace, "namespace", "", `Sidekiq's key namespace, for example "resque:gitlab:"`)
	fs.BoolVar(&c.move, "move", false, "with -redis-url: move the jobs instead of a dry run")
	fs.Float64Var(&c.rate, "rate", 1000, "with -move: jobs moved per second at most (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(c.workerFiles) == 0 {
		c.workerFiles = listFlag{"routing/testdata/all_queues.yml", "routing/testdata/ee_all_queues.yml"}
	}
	return &c, nil
}

// run is main without the process: it parses args, reads the files and writes
// the report to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	workers, err := readWorkers(c.workerFiles)
	if err != nil {
		return err
	}
	var b strings.Builder
	dummies := 0
	for _, w := range workers {
		if w.IsDummy() {
			dummies++
		}
	}
	fmt.Fprintf(&b, "%d workers from %s", len(workers), strings.Join(baseNames(c.workerFiles), ", "))
	if dummies > 0 {
		fmt.Fprintf(&b, " (%d of them GitLab's dummy entries, never routed)", dummies)
	}
	b.WriteString("\n")

	newData, err := os.ReadFile(c.newRules)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n== Lint %s ==\n", filepath.Base(c.newRules))
	findings := routing.LintRules(newData, workers)
	for _, f := range findings {
		fmt.Fprintf(&b, "%s\n", f)
	}
	if len(findings) == 0 {
		b.WriteString("no findings\n")
	}

	opts := &routing.Options{DefaultQueue: c.defaultQueue}
	before, err := readRouter(c.oldRules, opts, c.strict, workers)
	if err != nil {
		return err
	}
	after, err := readRouter(c.newRules, opts, c.strict, workers)
	if err != nil {
		return err
	}

	if c.selector != "" {
		queues, err := routing.SelectQueues(workers, c.selector, c.negate)
		if err != nil {
			return fmt.Errorf("-selector: %w", err)
		}
		negate := ""
		if c.negate {
			negate = " --negate"
		}
		fmt.Fprintf(&b, "\n== sidekiq-cluster --queue-selector%s '%s': %d queues ==\n%s\n",
			negate, c.selector, len(queues), strings.Join(queues, " "))
	}

	oldTable, err := before.Table(workers)
	if err != nil {
		return fmt.Errorf("%s: %w", c.oldRules, err)
	}
	newTable, err := after.Table(workers)
	if err != nil {
		return fmt.Errorf("%s: %w", c.newRules, err)
	}
	plan, err := routing.Plan(before, after, workers)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n== Routing table under %s ==\n", filepath.Base(c.newRules))
	b.WriteString(newTable.String())
	fmt.Fprintf(&b, "\n== Diff %s -> %s ==\n", filepath.Base(c.oldRules), filepath.Base(c.newRules))
	changes := routing.Diff(oldTable, newTable)
	for _, ch := range changes {
		fmt.Fprintf(&b, "%s\n", ch)
	}
	if len(changes) == 0 {
		b.WriteString("no worker changes queue\n")
	}
	b.WriteString("\n== Rollout plan ==\n")
	b.WriteString(plan.String())

	if c.redisURL != "" {
		if err := moveJobs(ctx, c, sidekiqmove.MovesFromChanges(plan.Changes), &b); err != nil {
			_, _ = io.WriteString(out, b.String())
			return err
		}
	}
	_, err = io.WriteString(out, b.String())
	return err
}

// moveJobs counts, or with -move moves, the jobs of the moving workers.
func moveJobs(ctx context.Context, c *config, moves []sidekiqmove.Move, b *strings.Builder) error {
	opt, err := redis.ParseURL(c.redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	opts := &sidekiqmove.Options{Namespace: c.namespace, DryRun: !c.move}
	title := "Jobs in Redis that would move (dry run; -move moves them)"
	if c.move {
		opts.Rate = c.rate
		title = "Moving jobs in Redis"
	}
	fmt.Fprintf(b, "\n== %s ==\n", title)
	if len(moves) == 0 {
		b.WriteString("no worker changes queue: nothing to move\n")
		return nil
	}
	m, err := sidekiqmove.New(client, moves, opts)
	if err != nil {
		return err
	}
	report, err := m.Run(ctx)
	if report != nil {
		b.WriteString(report.String())
	}
	if err != nil {
		return fmt.Errorf("moving jobs (every job is in one place; run again to finish): %w", err)
	}
	return nil
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

func readRouter(path string, opts *routing.Options, strict bool, workers []routing.Worker) (*routing.Router, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rules []routing.Rule
	if strict {
		rules, err = routing.ParseRulesStrict(data, workers)
	} else {
		rules, err = routing.ParseRules(data)
	}
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
