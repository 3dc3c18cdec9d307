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
	t.Run("one-line JSON", func(t *testing.T) {
		rules, err := ParseRules([]byte(`[["urgency=high", "urgent"], ["*", null]]`))
		require.NoError(t, err)
		require.Equal(t, []Rule{{Query: "urgency=high", Queue: "urgent"}, {Query: "*"}}, rules)
	})
	t.Run("empty", func(t *testing.T) {
		for _, in := range []string{"", "# nothing\n", "[]", "null"} {
			rules, err := ParseRules([]byte(in))
			require.NoError(t, err, in)
			require.Empty(t, rules, in)
		}
	})
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		index int // -1: an error about the whole document
		line  int
		msg   string
	}{
		{"not a list", `{"a": "b"}`, -1, 0, "want a list of [query, queue] pairs, got a mapping"},
		{"YAML syntax", `[["a=b", "q"]`, -1, 0, "rules: yaml:"},
		{"rule not a list", `[["*", null], "urgency=high"]`, 1, 1, `want a [query, queue] pair, got string "urgency=high"`},
		{"rule of one", "- [urgency=high]\n", 0, 1, "want a [query, queue] pair, got a list of 1 items"},
		{"rule of three", "- ['*', null]\n- [urgency=high, q, extra]\n", 1, 2, "got a list of 3 items"},
		{"rule is a mapping", "- {query: '*', queue: q}\n", 0, 1, "got a mapping"},
		{"query not a string", "- [null, q]\n", 0, 1, "query: want a string, got null"},
		{"query is a list", "- [[a], q]\n", 0, 1, "query: want a string, got a list"},
		{"queue a number", "- ['*', 12]\n", 0, 1, "queue: want a string or null, got integer"},
		{"queue a bool", "- ['*', false]\n", 0, 1, "queue: want a string or null, got boolean"},
		{"queue a list", "- ['*', [a, b]]\n", 0, 1, "queue: want a string or null, got a list"},
		{"bad query", "- ['*', null]\n- ['urgency=', q]\n", 1, 2, `selector "urgency=": offset 8: missing value after =`},
		{"bad queue name", "- ['*', 'a,b']\n", 0, 1, `invalid queue name "a,b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseRules([]byte(tt.input))
			require.Error(t, err)
			require.Nil(t, rules)
			require.True(t, errors.Is(err, ErrInvalidRule), "%v", err)
			require.Contains(t, err.Error(), tt.msg)
			var re *RuleError
			if tt.index < 0 {
				require.False(t, errors.As(err, &re), "%v", err)
				return
			}
			require.True(t, errors.As(err, &re), "%v", err)
			require.Equal(t, tt.index, re.Index)
			require.Equal(t, tt.line, re.Line)
		})
	}

	t.Run("syntax error is reachable", func(t *testing.T) {
		_, err := ParseRules([]byte(`[["colour=red", null]]`))
		require.ErrorIs(t, err, ErrInvalidSelector)
		var se *SyntaxError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 0, se.Offset)
		require.EqualError(t, err, `routing: rule 0 (line 1): routing: selector "colour=red": offset 0: unknown attribute "colour"; want one of `+attributeList)
	})
}

func TestNewRouterErrors(t *testing.T) {
	_, err := NewRouter([]Rule{{Query: "*", Queue: "default"}, {Query: "urgency=high&", Queue: "q"}}, nil)
	var re *RuleError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 1, re.Index)
	require.ErrorIs(t, err, ErrInvalidRule)
	require.ErrorIs(t, err, ErrInvalidSelector)
	require.EqualError(t, err, `routing: rule 1: routing: selector "urgency=high&": offset 13: empty term after &`)

	_, err = NewRouter([]Rule{{Query: "*", Queue: "two words"}}, nil)
	require.ErrorIs(t, err, ErrInvalidQueue)
	require.ErrorAs(t, err, &re)
	require.Equal(t, 0, re.Index)

	_, err = NewRouter(nil, &Options{DefaultQueue: "bad queue"})
	require.ErrorIs(t, err, ErrInvalidQueue)
	require.ErrorContains(t, err, "DefaultQueue")
}
