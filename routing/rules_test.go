package routing

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRules(t *testing.T) {
	want := []Rule{
		{Query: "feature_category=global_search&urgency=throttled", Queue: "elasticsearch"},
		{Query: "feature_category=global_search"},
		{Query: "queue_namespace=mail_scheduler", Queue: "mailers"},
		{Query: "resource_boundary=memory|tags=exclude_from_kubernetes"},
		{Query: "urgency=low&has_external_dependencies=false", Queue: "default"},
		{Query: "*"},
	}
	t.Run("JSON file", func(t *testing.T) {
		data, err := os.ReadFile("testdata/rules_after.json")
		require.NoError(t, err)
		rules, err := ParseRules(data)
		require.NoError(t, err)
		require.Equal(t, want, rules)
	})
	t.Run("YAML file", func(t *testing.T) {
		data, err := os.ReadFile("testdata/rules_before.yml")
		require.NoError(t, err)
		rules, err := ParseRules(data)
		require.NoError(t, err)
		require.Equal(t, append([]Rule{{Query: "feature_category=global_search"}}, want[2:]...), rules)
	})
	t.Run("empty list", func(t *testing.T) {
		rules, err := ParseRules([]byte("[]"))
		require.NoError(t, err)
		require.Empty(t, rules)
	})
}

// A rule's queue is read as Ruby reads the YAML value and Sidekiq turns it
// into a queue name; blank values mean the generated name.
func TestParseRulesQueueValues(t *testing.T) {
	tests := []struct {
		yaml, queue string
		generated   bool
	}{
		{"null", "", true},
		{"~", "", true},
		{"Null", "", true},
		{"", "", true},
		{`""`, "", true},
		{`"   "`, "   ", true},
		{"false", "", true},
		{"no", "", true},
		{"Off", "", true},
		{":''", "", true},
		{"true", "true", false},
		{"yes", "true", false},
		{"ON", "true", false},
		{"5", "5", false},
		{"1_000", "1000", false},
		{"1,000", "1000", false},
		{"0x1f", "31", false},
		{"017", "15", false},
		{"0b101", "5", false},
		{"1:30", "5400", false}, // Psych's sexagesimal reading
		{"1.5", "1.5", false},
		{"1.", "1.0", false},
		{".inf", "Infinity", false},
		{"1e3", "1e3", false}, // no dot: a String for Psych
		{"2024-1-2", "2024-01-02", false},
		{":elasticsearch", "elasticsearch", false},
		{":'add-on'", "add-on", false},
		{`"5"`, "5", false},
		{"'yes'", "yes", false},
		{"y", "y", false},
		{"elasticsearch", "elasticsearch", false},
		{"two words", "two words", false},
	}
	w := Worker{WorkerName: "Elastic::MigrationWorker", QueueNamespace: "cronjob"}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			rules, err := ParseRules([]byte("- - '*'\n  - " + tt.yaml + "\n"))
			require.NoError(t, err)
			require.Equal(t, []Rule{{Query: "*", Queue: tt.queue}}, rules)
			want := tt.queue
			if tt.generated {
				want = "cronjob:elastic_migration"
			}
			require.Equal(t, want, mustRouter(t, rules, nil).Route(w))
		})
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		kind  Problem
		index int // -1: the whole document
		line  int
		msg   string
	}{
		{"empty document", "", RulesNotList, -1, 0, "empty or null"},
		{"comment only", "# nothing\n", RulesNotList, -1, 0, "empty or null"},
		{"null document", "null", RulesNotList, -1, 0, "empty or null"},
		{"tilde document", "~", RulesNotList, -1, 0, "empty or null"},
		{"mapping", `{"a": "b"}`, RulesNotList, -1, 1, "want a list of [selector, queue] pairs, got a mapping"},
		{"string", `"urgency=high"`, RulesNotList, -1, 1, "got the string"},
		{"YAML syntax", `[["a=b", "q"]`, InvalidDocument, -1, 0, "not valid YAML or JSON"},
		{"rule not a list", `[["*", null], "urgency=high"]`, RuleNotPair, 1, 1, `got the string "urgency=high"`},
		{"empty rule", "- []\n", RuleNotPair, 0, 1, "got a list of 0 items"},
		{"rule of one", "- [urgency=high]\n", RuleNotPair, 0, 1, "got a list of 1 items"},
		{"rule of three", "- ['*', null]\n- [urgency=high, q, store]\n", RuleNotPair, 1, 2, "Sidekiq sharding"},
		{"rule is a mapping", "- {query: '*', queue: q}\n", RuleNotPair, 0, 1, "got a mapping"},
		{"selector null", "- [null, q]\n", SelectorNotString, 0, 1, "selector: want a string, got null"},
		{"selector empty plain", "- -\n  - q\n", SelectorNotString, 0, 1, "got null"},
		{"selector a list", "- [[a], q]\n", SelectorNotString, 0, 1, "got a list"},
		{"selector a number", "- [5, q]\n", SelectorNotString, 0, 1, "the integer 5"},
		{"selector true", "- [yes, q]\n", SelectorNotString, 0, 1, "true"},
		{"selector a symbol", "- ['*', q]\n- - :urgency\n  - q\n", SelectorNotString, 1, 2, "the symbol :urgency"},
		{"queue a list", "- ['*', [a, b]]\n", UnsupportedValue, 0, 1, "a list is not a queue name"},
		{"queue a mapping", "- ['*', {a: b}]\n", UnsupportedValue, 0, 1, "a mapping"},
		{"queue a timestamp", "- ['*', 2024-01-02 10:00:00]\n", UnsupportedValue, 0, 1, "timestamp"},
		{"queue tagged", "- ['*', !!binary aGk=]\n", UnsupportedValue, 0, 1, "tagged"},
		{"queue a whitespace symbol", "- - '*'\n  - :'  '\n", UnsupportedValue, 0, 1, "whitespace-only"},
		{"bad selector after catch-all", "- ['*', null]\n- ['urgency=', q]\n", InvalidTerm, 1, 2, `selector "urgency=": offset 8: invalid term`},
		{"unknown attribute", "- [colour=red, q]\n", UnknownAttribute, 0, 1, `unknown attribute "colour"`},
		{"first bad rule decides", "- [colour=red, q]\n- [[], q]\n", UnknownAttribute, 0, 1, "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseRules([]byte(tt.input))
			require.Error(t, err)
			require.Nil(t, rules)
			require.ErrorIs(t, err, ErrInvalidRule)
			require.NotErrorIs(t, err, ErrStrict)
			require.ErrorContains(t, err, tt.msg)
			var re *RuleError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tt.kind, re.Kind, "%v", err)
			require.Equal(t, tt.index, re.Index, "%v", err)
			require.Equal(t, tt.line, re.Line, "%v", err)
		})
	}

	t.Run("syntax error is reachable", func(t *testing.T) {
		_, err := ParseRules([]byte(`[["colour=red", null]]`))
		require.ErrorIs(t, err, ErrInvalidSelector)
		var se *SyntaxError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 0, se.Offset)
		require.Equal(t, UnknownAttribute, se.Kind)
		require.EqualError(t, err, `routing: rule 0 (line 1): routing: selector "colour=red": offset 0: unknown attribute "colour"; want one of `+
			attributeList+` (GitLab raises UnknownPredicate)`)
	})
}

func TestNewRouterErrors(t *testing.T) {
	_, err := NewRouter([]Rule{{Query: "*", Queue: "default"}, {Query: "&urgency=high", Queue: "q"}}, nil)
	var re *RuleError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 1, re.Index)
	require.Equal(t, InvalidTerm, re.Kind)
	require.ErrorIs(t, err, ErrInvalidRule)
	require.ErrorIs(t, err, ErrInvalidSelector)
	require.EqualError(t, err, `routing: rule 1: routing: selector "&urgency=high": offset 0: empty term before & (GitLab raises InvalidTerm)`)

	// GitLab accepts what it silently ignores, and any queue name.
	r, err := NewRouter([]Rule{{Query: "urgency=high&", Queue: "two words"}}, nil)
	require.NoError(t, err)
	require.Equal(t, "two words", r.Route(Worker{WorkerName: "PostReceive", Urgency: "high"}))

	_, err = NewRouter(nil, &Options{DefaultQueue: "bad queue"})
	require.ErrorIs(t, err, ErrInvalidQueue)
	require.ErrorContains(t, err, "DefaultQueue")
}

func TestRuleErrorFormats(t *testing.T) {
	require.EqualError(t, &RuleError{Index: -1, Err: errors.New("x")}, "routing: rules: x")
	require.EqualError(t, &RuleError{Index: -1, Line: 3, Err: errors.New("x")}, "routing: rules (line 3): x")
	require.EqualError(t, &RuleError{Index: 2, Err: errors.New("x")}, "routing: rule 2: x")
	require.ErrorIs(t, &RuleError{Kind: BlankQueue, Err: errors.New("x")}, ErrStrict)
}
