package routing

import (
	"strings"
)

// Worker is the routing metadata of one background worker class, as a
// Rails/Sidekiq deployment keeps it in all_queues.yml. The comment of each
// field names its all_queues.yml key; the selector attribute of the same name
// reads it.
//
// The fields hold what GitLab's files hold for an ordinary worker: Symbols
// for the Symbol attributes (feature_category, urgency, resource_boundary,
// queue_namespace, tags), a boolean for has_external_dependencies, and an
// empty string for a nil text attribute. Two fields record the rarer cases
// GitLab's selector tells apart, so code that builds workers by hand can
// ignore them: Nil (an attribute that is nil rather than false or empty)
// and Strings (an attribute written as a String where a Symbol is expected,
// like the urgency "low" of the mailers entry, which therefore does not
// match urgency=low). ReadWorkers fills both from the file.
type Worker struct {
	// WorkerName is the worker's class name, e.g. "Elastic::MigrationWorker"
	// (key and attribute worker_name). Generated queue names derive from it.
	// Empty for the dummy entry "default".
	WorkerName string
	// QueueName is the worker's generated queue name as the file records it,
	// e.g. "cronjob:elastic_migration" (key and attribute name; required).
	QueueName string
	// FeatureCategory is the product area owning the worker (feature_category).
	FeatureCategory string
	// Urgency is the worker's latency class: high, low, throttled
	// (urgency).
	Urgency string
	// ResourceBoundary is the resource the worker is bound by: cpu, memory,
	// unknown (resource_boundary).
	ResourceBoundary string
	// HasExternalDependencies reports that the worker calls services outside
	// the deployment (has_external_dependencies). See Nil for "unknown".
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
	// (depends_on_queue_name, a Ferry extension of the file). Moving such a
	// worker to another queue changes its behaviour, so Plan warns about it.
	// Not a selector attribute.
	DependsOnQueueName bool
	// LimitedCapacity marks a worker that limits its own concurrency (the
	// LimitedCapacity::Worker style, or a hand-rolled limit)
	// (limited_capacity, a Ferry extension). Its limit must not count jobs by
	// queue, so Plan warns before moving it. Not a selector attribute.
	LimitedCapacity bool

	// Nil lists attributes whose value is nil in the file, whatever the
	// field holds. It matters for has_external_dependencies, which is nil
	// on the dummy entries: nil never satisfies "=" (neither =true nor
	// =false) and always satisfies "!=". For the text attributes an empty
	// field already means nil.
	Nil Attribute
	// Strings lists Symbol attributes (feature_category, urgency,
	// resource_boundary, queue_namespace, tags) whose file value is a String
	// rather than a Symbol, like the mailers entry's urgency "low". GitLab
	// compares query values as Symbols, so such a value never satisfies "="
	// and always satisfies "!=". For tags it applies to every tag.
	Strings Attribute
}

// ID identifies the worker in routing tables, diffs and the Router's cache: its
// WorkerName, or its QueueName when WorkerName is empty (the dummy entry
// "default", and older all_queues.yml files without worker_name).
func (w Worker) ID() string {
	if w.WorkerName != "" {
		return w.WorkerName
	}
	return w.QueueName
}

// The queues and class of GitLab's two dummy entries.
const (
	dummyDefaultQueue = "default"
	dummyMailersQueue = "mailers"
	dummyMailerClass  = "ActionMailer::MailDeliveryJob"
)

// IsDummy reports whether w is one of the two entries GitLab's all_queues.yml
// holds for queues rather than for worker classes: "default" (no class) and
// "mailers" (ActionMailer::MailDeliveryJob). Selectors match them like any
// entry, so sidekiq-cluster's queue selection (SelectQueues) includes them,
// but the router never routes them: their jobs always use their own queue.
func (w Worker) IsDummy() bool {
	return w.QueueName == dummyDefaultQueue && w.WorkerName == "" ||
		w.QueueName == dummyMailersQueue && w.WorkerName == dummyMailerClass
}

// DummyWorkers returns GitLab's two dummy entries exactly as all_queues.yml
// describes them, for callers that build worker lists in code: "default"
// (no class, every attribute nil except feature_category :not_owned) and
// "mailers" (ActionMailer::MailDeliveryJob, feature_category :not_owned,
// urgency the String "low", weight 2, the other attributes nil).
func DummyWorkers() []Worker {
	nilAttrs := AttrHasExternalDependencies | AttrUrgency | AttrResourceBoundary | AttrQueueNamespace
	return []Worker{
		{QueueName: dummyDefaultQueue, FeatureCategory: "not_owned", Weight: 1, Nil: nilAttrs | AttrWorkerName},
		{QueueName: dummyMailersQueue, WorkerName: dummyMailerClass, FeatureCategory: "not_owned", Urgency: "low",
			Weight: 2, Nil: nilAttrs &^ AttrUrgency, Strings: AttrUrgency},
	}
}

// GeneratedQueueName returns the queue name GitLab derives from a worker's
// class when a rule routes it to a blank queue, or when no rule matches: the
// class name without one leading "Gitlab::" and one trailing "Worker", put
// through ActiveSupport's underscore (GitLab defines no acronyms), with "/"
// replaced by "_", prefixed by "<QueueNamespace>:" when the worker has a
// namespace. For example Elastic::MigrationWorker in namespace cronjob gets
// "cronjob:elastic_migration", and X509IssuerCrlCheckWorker gets
// "x509_issuer_crl_check". Without a class name it returns QueueName.
func GeneratedQueueName(w Worker) string {
	if w.WorkerName == "" {
		return w.QueueName
	}
	base := strings.TrimPrefix(w.WorkerName, "Gitlab::")
	base = strings.TrimSuffix(base, "Worker")
	base = strings.ReplaceAll(underscore(base), "/", "_")
	if w.QueueNamespace != "" && !w.Nil.Has(AttrQueueNamespace) {
		return w.QueueNamespace + ":" + base
	}
	return base
}

// underscore is ActiveSupport's String#underscore without acronyms: "::"
// becomes "/", "_" goes between an upper-case letter and an upper-case letter
// followed by a lower-case one (ABCd → AB_Cd) and between a lower-case letter
// or digit and an upper-case letter (both tested on the original string),
// "-" becomes "_", and everything is lower-cased. A string without an
// upper-case ASCII letter, "-" or "::" is returned as it is.
func underscore(s string) string {
	if !strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ-") && !strings.Contains(s, "::") {
		return s
	}
	s = strings.ReplaceAll(s, "::", "/")
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i > 0 && isUpper(c) {
			prev := s[i-1]
			if isLower(prev) || isDigit(prev) || (isUpper(prev) && i+1 < len(s) && isLower(s[i+1])) {
				b.WriteByte('_')
			}
		}
		if c == '-' {
			c = '_'
		}
		b.WriteByte(c)
	}
	return strings.ToLower(b.String())
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
