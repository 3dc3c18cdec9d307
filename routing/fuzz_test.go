package routing

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors are well-formed
// *SyntaxError values, and that the canonical form of every accepted query
// parses to the same selector, prints the same and matches the same workers.
//
// Run briefly with: go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 10s ./routing
func FuzzParse(f *testing.F) {
	for _, q := range []string{
		"*",
		" * ",
		"feature_category=global_search&urgency=throttled",
		"urgency=high|resource_boundary=memory&has_external_dependencies=false",
		"tags!=exclude_from_kubernetes,search",
		"worker_name=Elastic::MigrationWorker,Gitlab::GithubImport::ImportIssueWorker",
		"name=cronjob:elastic_migration|queue_namespace!=cronjob",
		" urgency = high , low & tags != a | name=x ",
		"urgency=high,high,low",
		"has_external_dependencies=true,false",
		"",
		"|",
		"a=b&",
		"urgency==high",
		"urgency!high",
		"colour=red",
		"urgency=h\xc3\xa9",
		"*|urgency=high",
		"urgency=,",
		"urgency!=,,",
		"&",
		"a=b||c=d",
		"x\nurgency=high",
		`urgency=throttled"`,
		"feature_category=add-on_provisioning",
		"has_external_dependencies=,true",
		"urgency=:high&tags=a,,b",
	} {
		f.Add(q)
	}
	probes := []Worker{
		{},
		{WorkerName: "Elastic::MigrationWorker", QueueName: "cronjob:elastic_migration", FeatureCategory: "global_search",
			Urgency: "throttled", ResourceBoundary: "unknown", QueueNamespace: "cronjob", Tags: []string{"a", "search"}},
		{WorkerName: "PostReceive", QueueName: "x", Urgency: "high", ResourceBoundary: "memory", HasExternalDependencies: true, Tags: []string{"b"}},
	}
	f.Fuzz(func(t *testing.T, query string) {
		s, err := Parse(query)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSelector) {
				t.Fatalf("Parse(%q): error %v is not a *SyntaxError wrapping ErrInvalidSelector", query, err)
			}
			if se.Offset < 0 || se.Offset > len(query) || se.Query != query || se.Msg == "" || !se.Kind.GitLabRejects() {
				t.Fatalf("Parse(%q): bad error fields %+v", query, se)
			}
			if !slices.ContainsFunc(Lint(query, nil), func(f Finding) bool { return f.Kind == se.Kind && f.Offset == se.Offset }) {
				t.Fatalf("Lint(%q) misses Parse's error %v", query, err)
			}
			return
		}
		canonical := s.String()
		if strings.ContainsAny(canonical, " \t") {
			t.Fatalf("Parse(%q).String() = %q contains spaces", query, canonical)
		}
		again, err := Parse(canonical)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canonical, query, err)
		}
		if got := again.String(); got != canonical {
			t.Fatalf("canonical form not stable: %q -> %q -> %q", query, canonical, got)
		}
		// The linter reports GitLab errors exactly when Parse fails, and
		// strict mode accepts exactly the selectors without strict findings.
		strict := 0
		for _, f := range Lint(query, nil) {
			if f.Kind.GitLabRejects() {
				t.Fatalf("Lint(%q) reports a GitLab error %v, but Parse accepts it", query, f)
			}
			if f.Kind.Strict() {
				strict++
			}
		}
		if _, err := ParseStrict(query, nil); (err == nil) != (strict == 0) {
			t.Fatalf("ParseStrict(%q) = %v with %d strict findings", query, err, strict)
		}
		for _, w := range append(probes, probeFromQuery(s)) {
			if s.Match(w) != again.Match(w) {
				t.Fatalf("%q and its canonical form %q disagree on %+v", query, canonical, w)
			}
		}
	})
}

// probeFromQuery builds a worker whose attributes equal the selector's first
// values, so matching is exercised beyond the fixed probes.
func probeFromQuery(s Selector) Worker {
	var w Worker
	for _, alt := range s.alternatives {
		for _, t := range alt {
			if len(t.values) == 0 {
				continue
			}
			v := t.values[0]
			switch t.attr {
			case AttrWorkerName:
				w.WorkerName = v
			case AttrName:
				w.QueueName = v
			case AttrFeatureCategory:
				w.FeatureCategory = v
			case AttrUrgency:
				w.Urgency = v
			case AttrResourceBoundary:
				w.ResourceBoundary = v
			case AttrHasExternalDependencies:
				w.HasExternalDependencies = v == "true"
			case AttrTags:
				w.Tags = append(w.Tags, v)
			case AttrQueueNamespace:
				w.QueueNamespace = v
			}
		}
	}
	return w
}

// FuzzParseRules checks that reading a rules document never panics, that
// ParseRules fails exactly when LintRules reports a problem GitLab or Ferry
// rejects, and that accepted rules build a router.
//
// Run briefly with: go test -run '^$' -fuzz '^FuzzParseRules$' -fuzztime 10s ./routing
func FuzzParseRules(f *testing.F) {
	for _, doc := range []string{
		`[["urgency=high", "urgent"], ["*", null]]`,
		"- [feature_category=global_search&urgency=throttled, elasticsearch]\n- ['*', default]\n",
		"- - '*'\n  - :symbol\n",
		"- [urgency=high, yes]\n- [urgency=low, 1_000]\n- [x, [a]]\n",
		"null", "", "{}", "- []", "- [a=b, q, store]", "- [5, q]", "- ['urgency=high ', '  ']",
	} {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		rules, err := ParseRules([]byte(doc))
		rejected := false
		for _, fd := range LintRules([]byte(doc), nil) {
			if fd.Kind.GitLabRejects() || fd.Kind.FerryLimit() {
				rejected = true
			}
			if fd.Msg == "" || fd.GitLab == "" {
				t.Fatalf("LintRules(%q): empty finding %+v", doc, fd)
			}
		}
		if (err != nil) != rejected {
			t.Fatalf("ParseRules(%q) = %v, but LintRules rejects: %v", doc, err, rejected)
		}
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) || re.Kind == 0 {
				t.Fatalf("ParseRules(%q): %v is not a *RuleError with a Kind", doc, err)
			}
			return
		}
		if _, err := NewRouter(rules, nil); err != nil {
			t.Fatalf("ParseRules(%q) accepted rules NewRouter refuses: %v", doc, err)
		}
	})
}
