package routing

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// RoutingTable is where a Router sends each of a set of workers: queue →
// workers and worker → queue. Build one with Router.Table. It is immutable.
type RoutingTable struct {
	workers []Worker       // sorted by ID
	queueOf []string       // queueOf[i] is the queue of workers[i]
	index   map[string]int // worker ID → position
	queues  []string       // distinct queues, sorted
	byQueue map[string][]int
}

// Table routes every worker as Route does and returns the resulting table:
// GitLab's dummy entries stay on their own queues. Two workers with the same
// ID are an ErrDuplicateWorker error. Table does not use or fill the Route
// cache.
func (r *Router) Table(workers []Worker) (*RoutingTable, error) {
	if r == nil {
		return nil, errNilRouter
	}
	// Sort positions rather than the (large) Worker values themselves.
	order := make([]int, len(workers))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(workers[a].ID(), workers[b].ID()) })
	t := &RoutingTable{
		workers: make([]Worker, len(workers)),
		index:   make(map[string]int, len(workers)),
		byQueue: make(map[string][]int),
	}
	for i, j := range order {
		t.workers[i] = workers[j]
	}
	t.queueOf = make([]string, len(t.workers))
	for i := range t.workers {
		w := &t.workers[i]
		if i > 0 && t.workers[i-1].ID() == w.ID() {
			return nil, fmt.Errorf("%w %q", ErrDuplicateWorker, w.ID())
		}
		q := r.route(w)
		t.queueOf[i] = q
		t.index[w.ID()] = i
		if _, ok := t.byQueue[q]; !ok {
			t.queues = append(t.queues, q)
		}
		t.byQueue[q] = append(t.byQueue[q], i)
	}
	slices.Sort(t.queues)
	return t, nil
}

// Len returns the number of workers in the table.
func (t *RoutingTable) Len() int { return len(t.workers) }

// Queues returns the distinct queues workers are routed to, sorted.
func (t *RoutingTable) Queues() []string { return slices.Clone(t.queues) }

// Workers returns the workers routed to queue, sorted by ID.
func (t *RoutingTable) Workers(queue string) []Worker {
	idx := t.byQueue[queue]
	out := make([]Worker, len(idx))
	for i, j := range idx {
		out[i] = t.workers[j]
	}
	return out
}

// QueueOf returns the queue of the worker with the given ID.
func (t *RoutingTable) QueueOf(id string) (string, bool) {
	i, ok := t.index[id]
	if !ok {
		return "", false
	}
	return t.queueOf[i], true
}

// Map returns a new map from worker ID to queue: the precomputed form of the
// table, for callers that want a plain lookup.
func (t *RoutingTable) Map() map[string]string {
	m := make(map[string]string, len(t.workers))
	for i, w := range t.workers {
		m[w.ID()] = t.queueOf[i]
	}
	return m
}

// WriteTo prints the table, one queue per paragraph with its workers:
//
//	elasticsearch (2 workers)
//	  ElasticCommitIndexerWorker
//	  ElasticDeleteProjectWorker
func (t *RoutingTable) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, q := range t.queues {
		idx := t.byQueue[q]
		fmt.Fprintf(&b, "%s (%d %s)\n", q, len(idx), plural(len(idx), "worker", "workers"))
		for _, j := range idx {
			fmt.Fprintf(&b, "  %s\n", t.workers[j].ID())
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// String returns what WriteTo prints.
func (t *RoutingTable) String() string {
	var b strings.Builder
	_, _ = t.WriteTo(&b)
	return b.String()
}

// Change is a worker whose queue differs between two routing tables. From is
// "" when the worker is only in the new table, To is "" when it is only in the
// old one.
type Change struct {
	Worker Worker // as in the new table, or the old one if it left
	From   string
	To     string
}

// String formats the change as "Worker: from -> to", with "(none)" for a
// missing side.
func (c Change) String() string {
	return fmt.Sprintf("%s: %s -> %s", c.Worker.ID(), orNone(c.From), orNone(c.To))
}

// Diff lists every worker whose queue differs between the before and after
// tables, sorted by worker ID, including workers present in only one of them.
// A nil table is empty.
func Diff(before, after *RoutingTable) []Change {
	if before == nil {
		before = &RoutingTable{}
	}
	if after == nil {
		after = &RoutingTable{}
	}
	var changes []Change
	for i, w := range after.workers {
		from, _ := before.QueueOf(w.ID())
		if to := after.queueOf[i]; from != to {
			changes = append(changes, Change{Worker: w, From: from, To: to})
		}
	}
	for i, w := range before.workers {
		if _, ok := after.index[w.ID()]; !ok {
			changes = append(changes, Change{Worker: w, From: before.queueOf[i]})
		}
	}
	// IDs are unique within each table and old-only workers are not in the
	// new one, so no two changes share an ID and any sort order is total.
	slices.SortFunc(changes, func(a, b Change) int { return cmp.Compare(a.Worker.ID(), b.Worker.ID()) })
	return changes
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
