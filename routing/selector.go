package routing

import (
	"strings"
)

// Selector is a parsed worker selector (see Parse). It is immutable and safe
// for concurrent use. The zero Selector matches no worker and prints as "",
// like GitLab's empty selector.
type Selector struct {
	all          bool     // "*", or an alternative without terms
	alternatives [][]term // OR of ANDs
}

// term is one attribute=value… or attribute!=value… test.
type term struct {
	attr   Attribute
	negate bool                // != instead of =
	values []string            // distinct, non-empty, in query order
	set    map[string]struct{} // the values, for long lists; nil for short ones
	// has_external_dependencies: GitLab turns "true" into true and every
	// other value into false.
	wantTrue, wantFalse bool
}

// textValue returns the worker's value of a single-valued text attribute, and
// false when it is nil or of a class the query values cannot equal (a String
// where GitLab compares Symbols).
func textValue(a Attribute, w *Worker) (string, bool) {
	if w.Nil&a != 0 || w.Strings&a&symbolAttrs != 0 {
		return "", false
	}
	var v string
	switch a {
	case AttrWorkerName:
		v = w.WorkerName
	case AttrName:
		v = w.QueueName
	case AttrFeatureCategory:
		v = w.FeatureCategory
	case AttrUrgency:
		v = w.Urgency
	case AttrResourceBoundary:
		v = w.ResourceBoundary
	case AttrQueueNamespace:
		v = w.QueueNamespace
	}
	return v, v != ""
}

// Match reports whether the worker satisfies the selector, as GitLab's
// WorkerMatcher#match? does: "*" matches every worker; otherwise at least one
// alternative must have all its terms true. A nil attribute (see Worker.Nil)
// never satisfies "=" and always satisfies "!="; a String where GitLab
// expects a Symbol (see Worker.Strings) never equals a query value.
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
	return t.hit(w) != t.negate
}

// hit reports whether the worker's value list and the query values share an
// element.
func (t *term) hit(w *Worker) bool {
	switch t.attr {
	case AttrHasExternalDependencies:
		if w.Nil&AttrHasExternalDependencies != 0 {
			return false
		}
		if w.HasExternalDependencies {
			return t.wantTrue
		}
		return t.wantFalse
	case AttrTags:
		if w.Nil&AttrTags != 0 || w.Strings&AttrTags != 0 {
			return false
		}
		for _, tag := range w.Tags {
			if tag != "" && t.has(tag) {
				return true
			}
		}
		return false
	}
	v, ok := textValue(t.attr, w)
	return ok && t.has(v)
}

func (t *term) has(v string) bool {
	if t.set != nil {
		_, ok := t.set[v]
		return ok
	}
	for _, have := range t.values {
		if have == v {
			return true
		}
	}
	return false
}

// String returns the canonical form of the selector: what GitLab reads,
// without ignored characters, empty pieces or duplicate values, every
// has_external_dependencies value as true or false, and "*" for a selector
// that matches every worker because of an alternative without terms. An
// empty value list prints as "attribute=,". Parse(s.String()) returns a
// selector equal to s; the zero Selector prints as "".
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
			if len(t.values) == 0 {
				b.WriteByte(',')
			}
			for k, v := range t.values {
				if k > 0 {
					b.WriteByte(',')
				}
				b.WriteString(v)
			}
		}
	}
	return b.String()
}
