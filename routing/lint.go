package routing

import (
	"fmt"
	"slices"
	"strings"
)

// Finding is one problem the linter found in a selector or a rules document,
// with what GitLab does with it.
type Finding struct {
	// Kind classifies the problem; Kind.GitLabRejects, Kind.Strict and
	// Kind.Notice say how serious it is.
	Kind Problem
	// Rule is the 0-based index of the rule concerned, or -1 for a lone
	// selector or the document as a whole.
	Rule int
	// Line is the rule's 1-based line in the rules document, 0 when unknown.
	Line int
	// Query is the selector concerned, if any.
	Query string
	// Offset is the 0-based byte offset in Query, or -1 when the finding is
	// about the rule or the document rather than a place in the selector.
	Offset int
	// Msg says what is wrong.
	Msg string
	// GitLab says how GitLab reads it or reacts to it.
	GitLab string
}

// String formats the finding on one line: where, the kind, what is wrong and
// GitLab's reading.
func (f Finding) String() string {
	var b strings.Builder
	if f.Rule >= 0 {
		fmt.Fprintf(&b, "rule %d", f.Rule)
		if f.Line > 0 {
			fmt.Fprintf(&b, " (line %d)", f.Line)
		}
		b.WriteString(": ")
	}
	if f.Offset >= 0 {
		q := f.Query
		if len(q) > 200 {
			q = q[:200] + "…"
		}
		fmt.Fprintf(&b, "selector %q: offset %d: ", q, f.Offset)
	}
	fmt.Fprintf(&b, "%s: %s; %s", f.Kind, f.Msg, f.GitLab)
	return b.String()
}

// Lint reports everything about a selector that GitLab rejects or accepts
// while it is almost certainly a mistake, each finding saying how GitLab
// reads it. Unlike Parse it does not stop at the first GitLab error. With a
// worker list it also reports values no worker has (UnknownValue) and a
// selector that matches no worker (MatchesNothing); matching includes
// GitLab's dummy entries, as sidekiq-cluster's selection does. A clean
// selector gives no findings.
func Lint(query string, workers []Worker) []Finding {
	sc := scanSelector(query, true)
	findings := sc.findings
	if sc.err == nil && workers != nil {
		idx := newValueIndex(workers)
		findings = append(findings, idx.unknownValues(&sc)...)
		if !slices.ContainsFunc(workers, sc.sel.Match) {
			findings = append(findings, Finding{Kind: MatchesNothing, Rule: -1, Query: query, Offset: -1,
				Msg: fmt.Sprintf("matches none of the %d workers", len(workers)), GitLab: "GitLab selects no queue with it"})
		}
	}
	return findings
}

// ParseStrict parses a selector as Parse does but also refuses what GitLab
// accepts silently (every Problem for which Kind.Strict is true): the error
// is a *SyntaxError whose Kind and Msg say what it is and how GitLab would
// read it, wrapping ErrStrict and ErrInvalidSelector. With a worker list it
// also refuses values no worker has and a selector that matches no worker.
func ParseStrict(query string, workers []Worker) (Selector, error) {
	sc := scanSelector(query, false)
	if sc.err != nil {
		return Selector{}, sc.err
	}
	for _, f := range Lint(query, workers) {
		if f.Kind.Strict() {
			off := f.Offset
			if off < 0 {
				off = 0
			}
			return Selector{}, &SyntaxError{Query: query, Offset: off, Kind: f.Kind, Msg: f.Msg + " (" + f.GitLab + ")"}
		}
	}
	return sc.sel, nil
}

// LintRules reports everything about a rules document that GitLab rejects,
// that Ferry cannot reproduce, or that GitLab accepts while it is almost
// certainly a mistake, in document order, each finding saying how GitLab
// reads it. Beyond the selector problems of Lint (for every rule, not just
// up to the first error) it reports queues that are not strings, blank or
// that sidekiq-cluster cannot name, rules after a rule that matches every
// worker, and a missing final "*" rule (a notice). With a worker list it also
// reports rules that route no worker (MatchesNothing) and rules whose
// workers are all routed by earlier rules (Unreachable); there, GitLab's
// dummy entries count for selector values but not as routed workers.
func LintRules(data []byte, workers []Worker) []Finding {
	doc, err := readRulesDocument(data)
	if err != nil {
		re := err.(*RuleError)
		return []Finding{{Kind: re.Kind, Rule: -1, Line: re.Line, Offset: -1, Msg: re.Err.Error(), GitLab: "GitLab fails to build the router"}}
	}
	var findings []Finding
	var idx *valueIndex
	var routable []*Worker
	var routed []bool
	if workers != nil {
		idx = newValueIndex(workers)
		for i := range workers {
			if !workers[i].IsDummy() {
				routable = append(routable, &workers[i])
			}
		}
		routed = make([]bool, len(routable))
	}
	catchAll := -1
	for i := range doc {
		rr := &doc[i]
		add := func(f Finding) {
			f.Rule, f.Line = rr.index, rr.line
			if f.Offset >= 0 {
				f.Query = rr.query.text
			}
			findings = append(findings, f)
		}
		whole := func(kind Problem, msg, gitlab string) {
			add(Finding{Kind: kind, Offset: -1, Msg: msg, GitLab: gitlab})
		}
		if err := rr.gitlabError(); err != nil && rr.scan.err == nil {
			re := err.(*RuleError)
			gitlab := "GitLab fails to build the router"
			if re.Kind.FerryLimit() {
				gitlab = "GitLab accepts it; Ferry refuses it"
			}
			whole(re.Kind, re.Err.Error(), gitlab)
			if re.Kind != UnsupportedValue {
				continue
			}
		}
		if rr.query.kind != rubyString {
			continue
		}
		for _, f := range rr.scan.findings {
			add(f)
		}
		if rr.scan.err != nil {
			continue
		}
		lintQueue(rr, whole)
		if catchAll >= 0 {
			whole(Unreachable, fmt.Sprintf("comes after rule %d, which matches every worker", catchAll),
				"GitLab never reaches it")
		} else if rr.scan.sel.all {
			catchAll = rr.index
		}
		if workers == nil {
			continue
		}
		for _, f := range idx.unknownValues(&rr.scan) {
			add(f)
		}
		if catchAll >= 0 && catchAll < rr.index {
			continue
		}
		matched, newly := 0, 0
		for j, w := range routable {
			if rr.scan.sel.match(w) {
				matched++
				if !routed[j] {
					routed[j] = true
					newly++
				}
			}
		}
		switch {
		case matched == 0 && slices.ContainsFunc(workers, func(w Worker) bool { return w.IsDummy() && rr.scan.sel.Match(w) }):
			whole(MatchesNothing, "matches only GitLab's dummy entries (default, mailers)", "GitLab never routes those, so the rule routes no worker")
		case matched == 0:
			whole(MatchesNothing, fmt.Sprintf("matches none of the %d workers", len(routable)), "GitLab routes no worker by it")
		case newly == 0 && !rr.scan.sel.all: // a catch-all is kept for workers added later
			whole(Unreachable, fmt.Sprintf("every worker it matches (%d) is routed by an earlier rule", matched), "GitLab routes no worker by it")
		}
	}
	if len(doc) == 0 || doc[len(doc)-1].query.kind != rubyString || doc[len(doc)-1].query.text != "*" {
		findings = append(findings, Finding{Kind: NoCatchAll, Rule: -1, Offset: -1,
			Msg:    `the last rule is not ["*", queue]`,
			GitLab: "GitLab logs a warning and sends workers no rule matches to their generated queue names"})
	}
	return findings
}

// lintQueue reports what is odd about a rule's queue value.
func lintQueue(rr *rawRule, report func(kind Problem, msg, gitlab string)) {
	q := rr.queue
	switch q.kind {
	case rubyNil:
		return
	case rubyString:
		if q.text != "" && blankString(q.text) {
			report(BlankQueue, fmt.Sprintf("queue %s is whitespace only", quoteShort(q.text)),
				"GitLab treats it as null: the generated queue name; write null")
			return
		}
	case rubyFalse:
		report(QueueNotString, "queue is false", "GitLab treats it as null: the generated queue name; write null")
		return
	default:
		s, ok := q.toS()
		if !ok {
			return // reported as UnsupportedValue
		}
		report(QueueNotString, fmt.Sprintf("queue is %s, not a string", q.what()),
			fmt.Sprintf("GitLab uses the queue %q; quote it", s))
		q.text = s
	}
	if strings.ContainsFunc(q.text, func(r rune) bool { return r == ',' || r <= ' ' || r == 0x7f || blankString(string(r)) }) {
		report(UnlistenableQueue, fmt.Sprintf("queue %s has a comma, whitespace or a control character", quoteShort(q.text)),
			"GitLab routes to it, but a sidekiq-cluster command line cannot name it")
	}
}

// ParseRulesStrict reads rules as ParseRules does but also refuses what
// GitLab accepts silently (every Problem for which Kind.Strict is true), with
// a *RuleError naming the rule, its kind and GitLab's reading, wrapping
// ErrStrict. With a worker list it also refuses rules that route no worker
// and rules whose workers earlier rules already route. Notices such as a
// missing final "*" rule do not fail.
func ParseRulesStrict(data []byte, workers []Worker) ([]Rule, error) {
	rules, err := ParseRules(data)
	if err != nil {
		return nil, err
	}
	for _, f := range LintRules(data, workers) {
		if !f.Kind.Strict() {
			continue
		}
		var cause error = fmt.Errorf("%s (%s)", f.Msg, f.GitLab)
		if f.Offset >= 0 {
			cause = &SyntaxError{Query: f.Query, Offset: f.Offset, Kind: f.Kind, Msg: f.Msg + " (" + f.GitLab + ")"}
		}
		return nil, &RuleError{Index: f.Rule, Line: f.Line, Kind: f.Kind, Err: cause}
	}
	return rules, nil
}

// valueIndex holds, per selector attribute, the values workers have, to
// spot query values no worker has.
type valueIndex map[Attribute]map[string]bool

func newValueIndex(workers []Worker) *valueIndex {
	idx := valueIndex{}
	add := func(a Attribute, v string) {
		if idx[a] == nil {
			idx[a] = map[string]bool{}
		}
		idx[a][v] = true
	}
	for i := range workers {
		w := &workers[i]
		for _, a := range []Attribute{AttrWorkerName, AttrName, AttrFeatureCategory, AttrUrgency, AttrResourceBoundary, AttrQueueNamespace} {
			if v, ok := textValue(a, w); ok {
				add(a, v)
			}
		}
		if w.Nil&AttrTags == 0 && w.Strings&AttrTags == 0 {
			for _, t := range w.Tags {
				add(AttrTags, t)
			}
		}
	}
	return &idx
}

// unknownValues reports the values of a selector's terms that no worker has.
// The scan must have been made with all set, so that it holds the values.
func (idx *valueIndex) unknownValues(sc *selectorScan) []Finding {
	var out []Finding
	for _, v := range sc.values {
		if v.attr == AttrHasExternalDependencies || v.text == "" || (*idx)[v.attr][v.text] {
			continue
		}
		if v.text[0] == ':' && symbolAttrs&v.attr != 0 {
			continue // reported as ColonValue
		}
		op := "="
		if v.negate {
			op = "!="
		}
		out = append(out, Finding{Kind: UnknownValue, Rule: -1, Query: sc.query, Offset: v.offset,
			Msg:    fmt.Sprintf("no worker has %s %s", v.attr, quoteShort(v.text)),
			GitLab: fmt.Sprintf("GitLab matches no worker by this value of %s%s", v.attr, op)})
	}
	return out
}
