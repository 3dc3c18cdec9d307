package routing

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// RolloutPlan is the zero-downtime order for moving workers from one set of
// routing rules to another. Jobs must never sit in a queue nobody listens to:
// clients switched first would push to queues no server serves yet, and old
// clients keep pushing to old queues until they are replaced. So servers
// first listen to old and new queues, then clients switch, then the old queues
// drain, and only then do servers stop listening to them.
//
// A server group is the set of server processes (one sidekiq-cluster
// argument) that serves one queue of the new rules. During the rollout it also
// listens to every old queue its workers leave that no new rule routes to
// (an old queue that stays in use keeps its own group, which drains it).
type RolloutPlan struct {
	// Listen is step 1: each server group's queues, its own queue first, then
	// the old queues it takes over, sorted.
	Listen []ServerGroup
	// NewQueues are queues of the new rules that the old rules did not use:
	// no server listens to them before step 1.
	NewQueues []string
	// Changes is step 2: every worker whose queue changes (see Diff).
	Changes []Change
	// Drain is step 3: each old queue that nothing routes to any more, with
	// where its workers go now.
	Drain []DrainQueue
	// Retire is step 4: the queues servers stop listening to, sorted.
	Retire []string
	// Final is the server groups after step 4: each listens to its own queue.
	Final []ServerGroup
	// Warnings are moving workers that need a human look before step 2.
	Warnings []Warning
}

// ServerGroup is one group of server processes and the queues it listens to.
type ServerGroup struct {
	Name   string // the new-rules queue the group exists for
	Queues []string
}

// DrainQueue is an old queue that must be empty before servers stop
// listening to it.
type DrainQueue struct {
	Queue   string
	To      []string // the queues its workers are routed to now, sorted
	Workers []string // the IDs of the workers that left it, sorted
}

// WarningKind classifies a Warning.
type WarningKind int

const (
	// WarnDependsOnQueueName: the worker uses its own queue name
	// (Worker.DependsOnQueueName), for example in Redis keys or queue-size checks.
	WarnDependsOnQueueName WarningKind = iota + 1
	// WarnLimitedCapacity: the worker limits its own concurrency
	// (Worker.LimitedCapacity); the limit must not count jobs by queue.
	WarnLimitedCapacity
)

// String returns a short name for the kind.
func (k WarningKind) String() string {
	switch k {
	case WarnDependsOnQueueName:
		return "depends-on-queue-name"
	case WarnLimitedCapacity:
		return "limited-capacity"
	}
	return fmt.Sprintf("WarningKind(%d)", int(k))
}

// Warning is a moving worker whose behaviour may change with its queue.
type Warning struct {
	Kind   WarningKind
	Change Change
}

// String explains the warning and what to check.
func (w Warning) String() string {
	c := w.Change
	switch w.Kind {
	case WarnDependsOnQueueName:
		return fmt.Sprintf("%s (%s -> %s) depends on its own queue name: stop using the queue name (keys, queue size) or document the new semantics before switching clients",
			c.Worker.ID(), orNone(c.From), orNone(c.To))
	case WarnLimitedCapacity:
		return fmt.Sprintf("%s (%s -> %s) limits its own capacity: make sure the limit counts jobs per worker class, not by queue name or queue size",
			c.Worker.ID(), orNone(c.From), orNone(c.To))
	}
	return fmt.Sprintf("%s: %s", c.Worker.ID(), w.Kind)
}

// Plan computes the zero-downtime rollout from the before routing rules to
// the after rules for the given workers, in four ordered steps:
//
//  1. every server group listens to its new queue and the old queues it takes
//     over (old ∪ new), printable as a sidekiq-cluster --dryrun command;
//  2. clients switch to the new rules;
//  3. jobs left in old queues drain or are migrated;
//  4. servers stop listening to queues nothing routes to.
//
// It warns about moving workers that depend on their own queue name or limit
// their own capacity. Duplicate worker IDs are an ErrDuplicateWorker error.
func Plan(before, after *Router, workers []Worker) (*RolloutPlan, error) {
	if before == nil || after == nil {
		return nil, errNilRouter
	}
	oldT, err := before.Table(workers)
	if err != nil {
		return nil, fmt.Errorf("routing: plan: old rules: %w", err)
	}
	newT, err := after.Table(workers)
	if err != nil {
		return nil, fmt.Errorf("routing: plan: new rules: %w", err)
	}

	p := &RolloutPlan{Changes: Diff(oldT, newT)}
	newQueues := make(map[string]bool, len(newT.queues))
	for _, q := range newT.queues {
		newQueues[q] = true
	}
	oldQueues := make(map[string]bool, len(oldT.queues))
	for _, q := range oldT.queues {
		oldQueues[q] = true
		if !newQueues[q] {
			p.Retire = append(p.Retire, q)
		}
	}
	for _, q := range newT.queues {
		if !oldQueues[q] {
			p.NewQueues = append(p.NewQueues, q)
		}
	}

	// Old queues each new queue takes over, and where each retired queue's
	// workers went.
	takeover := make(map[string][]string)
	drains := make(map[string]*DrainQueue)
	for _, c := range p.Changes {
		if c.From == "" || c.To == "" || newQueues[c.From] {
			continue
		}
		if !slices.Contains(takeover[c.To], c.From) {
			takeover[c.To] = append(takeover[c.To], c.From)
		}
		d := drains[c.From]
		if d == nil {
			d = &DrainQueue{Queue: c.From}
			drains[c.From] = d
		}
		if !slices.Contains(d.To, c.To) {
			d.To = append(d.To, c.To)
		}
		d.Workers = append(d.Workers, c.Worker.ID())
	}
	for _, q := range newT.queues {
		extra := takeover[q]
		slices.Sort(extra)
		p.Listen = append(p.Listen, ServerGroup{Name: q, Queues: append([]string{q}, extra...)})
		p.Final = append(p.Final, ServerGroup{Name: q, Queues: []string{q}})
	}
	for _, q := range p.Retire {
		if d := drains[q]; d != nil {
			slices.Sort(d.To)
			slices.Sort(d.Workers)
			p.Drain = append(p.Drain, *d)
		}
	}

	for _, c := range p.Changes {
		if c.From == "" || c.To == "" {
			continue // a worker that appears or disappears has no queued jobs to strand
		}
		if c.Worker.DependsOnQueueName {
			p.Warnings = append(p.Warnings, Warning{Kind: WarnDependsOnQueueName, Change: c})
		}
		if c.Worker.LimitedCapacity {
			p.Warnings = append(p.Warnings, Warning{Kind: WarnLimitedCapacity, Change: c})
		}
	}
	return p, nil
}

// DryRunCommand formats server groups as a sidekiq-cluster command line, one
// argument per group with its queues joined by commas:
//
//	sidekiq-cluster --dryrun default elasticsearch,elastic_commit_indexer
//
// An argument with characters a shell would interpret is single-quoted. A
// queue name with a comma cannot be expressed at all (sidekiq-cluster splits
// on commas); LintRules reports such names as UnlistenableQueue.
func DryRunCommand(groups []ServerGroup) string {
	var b strings.Builder
	b.WriteString("sidekiq-cluster --dryrun")
	for _, g := range groups {
		b.WriteByte(' ')
		b.WriteString(shellQuote(strings.Join(g.Queues, ",")))
	}
	return b.String()
}

// shellQuote returns s unchanged when a POSIX shell would pass it through as
// one word, and single-quoted otherwise.
func shellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = isUpper(c) || isLower(c) || isDigit(c) || strings.IndexByte("_:.,/-=+@%", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Step is one printable step of a RolloutPlan.
type Step struct {
	Number int
	Title  string
	Lines  []string
}

// Steps returns the plan's four steps in order, ready to print.
func (p *RolloutPlan) Steps() []Step {
	listen := Step{Number: 1, Title: "Servers: listen to old and new queues (deploy before any client switches)"}
	for _, g := range p.Listen {
		listen.Lines = append(listen.Lines, fmt.Sprintf("group %s: %s", g.Name, strings.Join(g.Queues, " ")))
	}
	if len(p.NewQueues) > 0 {
		listen.Lines = append(listen.Lines, "new queues (no server listens yet): "+strings.Join(p.NewQueues, " "))
	}
	listen.Lines = append(listen.Lines, "$ "+DryRunCommand(p.Listen))

	switchClients := Step{Number: 2, Title: "Clients: switch to the new routing rules"}
	for _, c := range p.Changes {
		switchClients.Lines = append(switchClients.Lines, c.String())
	}
	if len(p.Changes) == 0 {
		switchClients.Lines = append(switchClients.Lines, "no worker changes queue")
	}

	drain := Step{Number: 3, Title: "Drain or migrate jobs left in old queues"}
	for _, d := range p.Drain {
		drain.Lines = append(drain.Lines, fmt.Sprintf("%s: wait until empty or move its jobs to %s (%s)",
			d.Queue, strings.Join(d.To, ", "), strings.Join(d.Workers, ", ")))
	}
	if len(p.Drain) > 0 {
		drain.Lines = append(drain.Lines, "jobs already scheduled or waiting for a retry name an old queue: move them too (sidekiqmove moves queued, scheduled and retry jobs)")
	} else {
		drain.Lines = append(drain.Lines, "no old queue to drain")
	}

	stop := Step{Number: 4, Title: "Servers: stop listening to queues nothing routes to"}
	if len(p.Retire) > 0 {
		stop.Lines = append(stop.Lines, "stop: "+strings.Join(p.Retire, " "))
	} else {
		stop.Lines = append(stop.Lines, "nothing to stop")
	}
	stop.Lines = append(stop.Lines, "$ "+DryRunCommand(p.Final))

	return []Step{listen, switchClients, drain, stop}
}

// WriteTo prints the warnings, if any, then the steps.
func (p *RolloutPlan) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if len(p.Warnings) > 0 {
		b.WriteString("Warnings (resolve before step 2):\n")
		for _, warn := range p.Warnings {
			fmt.Fprintf(&b, "  ! %s\n", warn)
		}
	}
	for _, s := range p.Steps() {
		fmt.Fprintf(&b, "%d. %s\n", s.Number, s.Title)
		for _, l := range s.Lines {
			fmt.Fprintf(&b, "   %s\n", l)
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// String returns what WriteTo prints.
func (p *RolloutPlan) String() string {
	var b strings.Builder
	_, _ = p.WriteTo(&b)
	return b.String()
}
