package routing

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrNoQueues is returned by ClusterQueueGroups when no argument selects any
// queue, where sidekiq-cluster fails with "No queues found".
var ErrNoQueues = errors.New("routing: no queues found, select at least one queue")

// SelectQueues returns the queues that sidekiq-cluster --queue-selector
// starts one process for, given one selector argument: the name (the
// all_queues.yml name, Worker.QueueName) of every entry the selector matches,
// in the order of workers. With negate (--negate) it returns the names of
// the entries it does not match instead. Entries include GitLab's dummy
// entries, as the command's do. A selector with a line break is refused, as
// sidekiq-cluster refuses it; otherwise errors are Parse's.
func SelectQueues(workers []Worker, selector string, negate bool) ([]string, error) {
	if strings.ContainsAny(selector, "\r\n") {
		return nil, fmt.Errorf("%w: sidekiq-cluster refuses arguments with line breaks: %q", ErrInvalidSelector, selector)
	}
	sel, err := Parse(selector)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(workers))
	for i := range workers {
		if sel.match(&workers[i]) != negate {
			out = append(out, workers[i].QueueName)
		}
	}
	return out, nil
}

// ClusterOptions are the sidekiq-cluster flags ClusterQueueGroups follows.
type ClusterOptions struct {
	// QueueSelector (--queue-selector): every argument is a selector.
	// Otherwise every argument is a comma-separated list of queue names, each
	// also standing for the queues of its namespace ("cronjob" adds every
	// "cronjob:…" queue).
	QueueSelector bool
	// Negate (--negate): each group becomes every known queue except the
	// ones the argument selects.
	Negate bool
}

// ClusterQueueGroups returns the queue groups sidekiq-cluster starts, one per
// argument, as its --dryrun and --list-queues options show them (unsorted:
// --list-queues sorts each group). The argument "*" means every entry's
// queue. An argument with a line break, no argument at all, or groups that
// are all empty (ErrNoQueues) are errors, as in sidekiq-cluster.
func ClusterQueueGroups(workers []Worker, args []string, opts ClusterOptions) ([][]string, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: specify at least one queue or selector", ErrNoQueues)
	}
	all := make([]string, len(workers))
	for i, w := range workers {
		all[i] = w.QueueName
	}
	groups := make([][]string, len(args))
	for i, arg := range args {
		if strings.ContainsAny(arg, "\r\n") {
			return nil, fmt.Errorf("routing: argument %d: sidekiq-cluster refuses arguments with line breaks: %q", i, arg)
		}
		var g []string
		switch {
		case arg == "*":
			g = append(g, all...)
		case opts.QueueSelector:
			var err error
			if g, err = SelectQueues(workers, arg, false); err != nil {
				return nil, fmt.Errorf("routing: argument %d: %w", i, err)
			}
		default:
			var err error
			if g, err = expandQueues(arg, all); err != nil {
				return nil, fmt.Errorf("routing: argument %d: %w", i, err)
			}
		}
		if opts.Negate {
			g = without(all, g)
		}
		groups[i] = g
	}
	for _, g := range groups {
		if len(g) > 0 {
			return groups, nil
		}
	}
	return nil, ErrNoQueues
}

// expandQueues is sidekiq-cluster's reading of a queue list: each name, then
// every known queue matching \A<name>: (the name is a regular expression
// there, as in GitLab).
func expandQueues(arg string, all []string) ([]string, error) {
	var out []string
	ps, _ := rubySplit(arg, 0, len(arg), ',')
	for _, p := range ps {
		q := arg[p.start:p.end]
		out = append(out, q)
		// Interpolated as it is, without a group, as Ruby's /\A#{queue}:/.
		re, err := regexp.Compile(`\A` + q + `:`)
		if err != nil {
			return nil, fmt.Errorf("queue %q is not a valid pattern: %w", q, err)
		}
		for _, name := range all {
			if re.MatchString(name) {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

// without returns the items of all that are not in drop, in order (Ruby's
// Array#-).
func without(all, drop []string) []string {
	skip := make(map[string]bool, len(drop))
	for _, d := range drop {
		skip[d] = true
	}
	var out []string
	for _, a := range all {
		if !skip[a] {
			out = append(out, a)
		}
	}
	return out
}
