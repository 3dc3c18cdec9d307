package routing

import (
	"strings"
)

// Worker is the routing metadata of one background worker class, as a
// Rails/Sidekiq deployment keeps it in all_queues.yml. The comment of each
// field names its all_queues.yml key; the selector attribute of the same name
// reads it.
type Worker struct {
	// WorkerName is the worker's class name, e.g. "Elastic::MigrationWorker"
	// (key and attribute worker_name). Generated queue names derive from it.
	WorkerName string
	// QueueName is the queue the worker is declared on today, e.g.
	// "cronjob:elastic_migration" (key and attribute name; required).
	QueueName string
	// FeatureCategory is the product area owning the worker (feature_category).
	FeatureCategory string
	// Urgency is the worker's latency class: high, low, throttled… (urgency).
	Urgency string
	// ResourceBoundary is the resource the worker is bound by: cpu, memory,
	// unknown… (resource_boundary).
	ResourceBoundary string
	// HasExternalDependencies reports that the worker calls services outside
	// the deployment (has_external_dependencies).
	HasExternalDependencies bool
	// Tags are free-form labels (tags).
	Tags []string
	// QueueNamespace groups workers such as cron jobs; a generated queue name
	// is prefixed with "<namespace>:" (queue_namespace).
	QueueNamespace string
	// Weight is the worker's relative priority within its server (weight).
	// It does not affect routing.
	Weight int
	// Idempotent reports that running a job twice is safe (idempotent). It does
	// not affect routing.
	Idempotent bool
	// DependsOnQueueName marks a worker whose code uses its own queue name, for
	// example Redis keys built from it or checks of its queue's size
	// (depends_on_queue_name). Moving such a worker to another queue changes
	// its behaviour, so Plan warns about it. Not a selector attribute.
	DependsOnQueueName bool
	// LimitedCapacity marks a worker that limits its own concurrency (the
	// LimitedCapacity::Worker style, or a hand-rolled limit) (limited_capacity).
	// Its limit must not count jobs by queue, so Plan warns before moving it.
	// Not a selector attribute.
	LimitedCapacity bool
}

// ID identifies the worker in routing tables, diffs and the Router's cache: its
// WorkerName, or its QueueName when WorkerName is empty (older all_queues.yml
// files have no worker_name; their queue names are unique per worker).
func (w Worker) ID() string {
	if w.WorkerName != "" {
		return w.WorkerName
	}
	return w.QueueName
}

// GeneratedQueueName returns the queue a worker gets when a rule routes it to
// a null queue: its class name without a leading "Gitlab::" and a trailing
// "Worker", in snake_case with "::" turned into "_", prefixed by
// "<QueueNamespace>:" when the worker has a namespace. For example
// Elastic::MigrationWorker in namespace cronjob gets "cronjob:elastic_migration".
// Without a class name (or when nothing is left of it) it returns QueueName.
//
// The conversion follows Rails' String#underscore without custom acronym
// inflections: "HTMLParser" becomes "html_parser".
func GeneratedQueueName(w Worker) string {
	base := strings.TrimPrefix(w.WorkerName, "Gitlab::")
	base = strings.TrimSuffix(base, "Worker")
	if base == "" {
		return w.QueueName
	}
	parts := strings.Split(base, "::")
	for i, p := range parts {
		parts[i] = snakeCase(p)
	}
	name := strings.Join(parts, "_")
	if w.QueueNamespace != "" {
		return w.QueueNamespace + ":" + name
	}
	return name
}

// snakeCase converts one CamelCase segment: an underscore goes before an
// upper-case letter that follows a lower-case letter or digit, or that starts
// a new word after an acronym ("HTMLParser" → "html_parser").
func snakeCase(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUpper(c) && i > 0 {
			prev := s[i-1]
			if isLower(prev) || isDigit(prev) || (isUpper(prev) && i+1 < len(s) && isLower(s[i+1])) {
				b.WriteByte('_')
			}
		}
		if isUpper(c) {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validQueueName reports whether servers can listen to q: letters, digits and
// "_:.-/" only, so it survives a sidekiq-cluster command line (where "," and
// spaces separate queues) unquoted.
func validQueueName(q string) bool {
	if q == "" || len(q) > 255 {
		return false
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if !(isUpper(c) || isLower(c) || isDigit(c) || strings.IndexByte("_:.-/", c) >= 0) {
			return false
		}
	}
	return true
}

// validNamespace reports whether ns can prefix a queue name.
func validNamespace(ns string) bool {
	return validQueueName(ns) && !strings.Contains(ns, ":")
}

// validClassName reports whether s looks like a Ruby constant path such as
// "Elastic::MigrationWorker".
func validClassName(s string) bool {
	if s == "" {
		return false
	}
	for seg := range strings.SplitSeq(s, "::") {
		if seg == "" || !isUpper(seg[0]) {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(isUpper(c) || isLower(c) || isDigit(c) || c == '_') {
				return false
			}
		}
	}
	return true
}
