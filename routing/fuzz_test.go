package routing

import (
	"errors"
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
			if se.Offset < 0 || se.Offset > len(query) || se.Query != query || se.Msg == "" {
				t.Fatalf("Parse(%q): bad error fields %+v", query, se)
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
			v := t.values[0]
			switch t.attr {
			case attrWorkerName:
				w.WorkerName = v
			case attrName:
				w.QueueName = v
			case attrFeatureCategory:
				w.FeatureCategory = v
			case attrUrgency:
				w.Urgency = v
			case attrResourceBoundary:
				w.ResourceBoundary = v
			case attrHasExternalDependencies:
				w.HasExternalDependencies = v == "true"
			case attrTags:
				w.Tags = append(w.Tags, v)
			case attrQueueNamespace:
				w.QueueNamespace = v
			}
		}
	}
	return w
}
