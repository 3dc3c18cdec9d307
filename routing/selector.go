package routing

import (
	"slices"
	"strconv"
	"strings"
)

// Selector is a parsed worker selector query (see Parse). It is immutable and
// safe for concurrent use. The zero Selector matches no worker and prints as "".
type Selector struct {
	all          bool     // the query "*"
	alternatives [][]term // OR of ANDs
}

// term is one attribute=value[,value…] or attribute!=value[,value…].
type term struct {
	attr   attribute
	negate bool     // != instead of =
	values []string // distinct, in query order
}

// attribute is a worker attribute a term can test.
type attribute uint8

const (
	attrWorkerName attribute = iota + 1
	attrName
	attrFeatureCategory
	attrUrgency
	attrResourceBoundary
	attrHasExternalDependencies
	attrTags
	attrQueueNamespace
)

// attributeList is the help text for unknown-attribute errors, sorted.
const attributeList = "feature_category, has_external_dependencies, name, queue_namespace, resource_boundary, tags, urgency, worker_name"

func lookupAttribute(name string) (attribute, bool) {
	switch name {
	case "worker_name":
		return attrWorkerName, true
	case "name":
		return attrName, true
	case "feature_category":
		return attrFeatureCategory, true
	case "urgency":
		return attrUrgency, true
	case "resource_boundary":
		return attrResourceBoundary, true
	case "has_external_dependencies":
		return attrHasExternalDependencies, true
	case "tags":
		return attrTags, true
	case "queue_namespace":
		return attrQueueNamespace, true
	}
	return 0, false
}

// String returns the attribute's name in the selector language.
func (a attribute) String() string {
	switch a {
	case attrWorkerName:
		return "worker_name"
	case attrName:
		return "name"
	case attrFeatureCategory:
		return "feature_category"
	case attrUrgency:
		return "urgency"
	case attrResourceBoundary:
		return "resource_boundary"
	case attrHasExternalDependencies:
		return "has_external_dependencies"
	case attrTags:
		return "tags"
	case attrQueueNamespace:
		return "queue_namespace"
	}
	return "attribute(" + strconv.Itoa(int(a)) + ")"
}

// value returns the worker's value of a single-valued attribute.
func (a attribute) value(w *Worker) string {
	switch a {
	case attrWorkerName:
		return w.WorkerName
	case attrName:
		return w.QueueName
	case attrFeatureCategory:
		return w.FeatureCategory
	case attrUrgency:
		return w.Urgency
	case attrResourceBoundary:
		return w.ResourceBoundary
	case attrHasExternalDependencies:
		return strconv.FormatBool(w.HasExternalDependencies)
	case attrQueueNamespace:
		return w.QueueNamespace
	}
	return ""
}

// Match reports whether the worker satisfies the selector: "*" matches every
// worker; otherwise at least one alternative must have all its terms true.
func (s Selector) Match(w Worker) bool {
	return s.match(&w)
}

func (s *Selector) match(w *Worker) bool {
	if s.all {
		return true
	}
	for _, alt := range s.alternatives {
		if matchAll(alt, w) {
			return true
		}
	}
	return false
}

func matchAll(terms []term, w *Worker) bool {
	for i := range terms {
		if !terms[i].match(w) {
			return false
		}
	}
	return true
}

func (t *term) match(w *Worker) bool {
	var hit bool
	if t.attr == attrTags {
		// = means "has any of these tags", != "has none of them".
		for _, tag := range w.Tags {
			if slices.Contains(t.values, tag) {
				hit = true
				break
			}
		}
	} else {
		hit = slices.Contains(t.values, t.attr.value(w))
	}
	return hit != t.negate
}

// String returns the canonical form of the selector: no spaces, duplicate
// values dropped, everything else in query order. Parse(s.String()) returns a
// selector equal to s.
func (s Selector) String() string {
	if s.all {
		return "*"
	}
	var b strings.Builder
	for i, alt := range s.alternatives {
		if i > 0 {
			b.WriteByte('|')
		}
		for j, t := range alt {
			if j > 0 {
				b.WriteByte('&')
			}
			b.WriteString(t.attr.String())
			if t.negate {
				b.WriteString("!=")
			} else {
				b.WriteByte('=')
			}
			b.WriteString(strings.Join(t.values, ","))
		}
	}
	return b.String()
}
