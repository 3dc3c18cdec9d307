package routing

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type wantFinding struct {
	kind   Problem
	offset int
	gitlab string // a part of Finding.GitLab
}

func kindsOf(fs []Finding) []Problem {
	var out []Problem
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

// Everything GitLab accepts silently is a finding saying how GitLab reads it
// (gitlab-semantics.md §8), and GitLab's own errors are all reported.
func TestLintSelector(t *testing.T) {
	tests := []struct {
		query string
		want  []wantFinding
	}{
		{"feature_category=global_search&urgency=throttled", nil},
		{"*", nil},
		{"", []wantFinding{{EmptySelector, 0, "matches no worker"}}},
		{"|", []wantFinding{{EmptyAlternative, 0, "matches no worker"}}},
		{"urgency=high|", []wantFinding{{EmptyAlternative, 12, "ignores it"}}},
		{"|urgency=high", []wantFinding{{EmptyAlternative, 0, "matches every worker"}}},
		{"urgency=high||urgency=low", []wantFinding{{EmptyAlternative, 13, "matches every worker"}}},
		{"&", []wantFinding{{EmptyAlternative, 0, "matches every worker"}}},
		{"urgency=high&", []wantFinding{{EmptyTerm, 12, "ignores it"}}},
		{"urgency=high ", []wantFinding{{TrailingText, 12, `reads "urgency=high"`}}},
		{`urgency=throttled"`, []wantFinding{{TrailingText, 17, `reads "urgency=throttled"`}}},
		{"feature_category=add-on_provisioning", []wantFinding{{TrailingText, 20, `reads "feature_category=add"`}}},
		{"urgency=high=low", []wantFinding{{TrailingText, 12, `reads "urgency=high"`}}},
		{"urgency=high,,low", []wantFinding{{EmptyValue, 13, "matches no worker"}}},
		{"urgency=high,", []wantFinding{{EmptyValue, 12, "ignores it"}}},
		{"urgency=,", []wantFinding{{EmptyValue, 8, "= matches no worker"}}},
		{"urgency!=,", []wantFinding{{EmptyValue, 9, "!= matches every worker"}}},
		{"has_external_dependencies=,true", []wantFinding{{EmptyValue, 26, "false"}}},
		{"urgency=:high", []wantFinding{{ColonValue, 8, `Symbol :":high"`}}},
		{"name=cronjob:foo", nil}, // a colon inside a String value is fine
		{"has_external_dependencies=yes", []wantFinding{{BooleanText, 26, "as false"}}},
		{"x\nurgency=high", []wantFinding{{MultiLineTerm, 0, `reads "urgency=high"`}}},
		{"colour=red&urgency=", []wantFinding{{UnknownAttribute, 0, "UnknownPredicate"}, {InvalidTerm, 19, "InvalidTerm"}}},
		{"urgency=high &tags=a|", []wantFinding{{EmptyAlternative, 20, "ignores it"}, {TrailingText, 12, "reads"}}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := Lint(tt.query, nil)
			require.Len(t, got, len(tt.want), "%v", got)
			for i, w := range tt.want {
				f := got[i]
				require.Equal(t, w.kind, f.Kind, "%v", f)
				require.Equal(t, w.offset, f.Offset, "%v", f)
				require.Contains(t, f.GitLab, w.gitlab, "%v", f)
				require.Equal(t, tt.query, f.Query)
				require.Equal(t, -1, f.Rule)
				require.NotEmpty(t, f.Msg)
				require.Contains(t, f.String(), f.Kind.String())
			}
		})
	}
}

func TestLintSelectorWithWorkers(t *testing.T) {
	workers := slices.Collect(func(yield func(Worker) bool) {
		for _, w := range probeWorkers() {
			if !yield(w) {
				return
			}
		}
	})
	got := Lint("feature_category=global_serach&urgency=throttled", workers)
	require.Equal(t, []Problem{UnknownValue, MatchesNothing}, kindsOf(got))
	require.Equal(t, 17, got[0].Offset)
	require.Contains(t, got[0].Msg, `no worker has feature_category "global_serach"`)
	require.Contains(t, got[1].Msg, "matches none of the 6 workers")

	// A value some worker has is fine even if the whole term misses.
	require.Empty(t, Lint("urgency=throttled,low", workers))
	// Only dummies match: still a match for sidekiq-cluster's selection.
	require.Empty(t, Lint("feature_category=not_owned", workers))
	// A String value never equals, so it counts as unknown.
	require.Equal(t, []Problem{UnknownValue}, kindsOf(Lint("urgency=high,lowest", workers)))
}

func TestParseStrict(t *testing.T) {
	sel, err := ParseStrict("feature_category=global_search&urgency=throttled", nil)
	require.NoError(t, err)
	want, _ := Parse("feature_category=global_search&urgency=throttled")
	require.Equal(t, want, sel)

	for _, q := range []string{"", "urgency=high ", "urgency=high|", "&", "urgency=high&", "urgency=a,,b", "urgency=:high", "has_external_dependencies=yes"} {
		_, err := ParseStrict(q, nil)
		require.ErrorIs(t, err, ErrStrict, "%q", q)
		require.ErrorIs(t, err, ErrInvalidSelector, "%q", q)
		var se *SyntaxError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Kind.Strict(), "%q: %v", q, se.Kind)
		require.Contains(t, se.Msg, "GitLab", "%q", q)
		// GitLab mode accepts every one of them.
		_, err = Parse(q)
		require.NoError(t, err, "%q", q)
	}

	// GitLab's own errors are reported as they are, without ErrStrict.
	_, err = ParseStrict("&urgency=high", nil)
	require.NotErrorIs(t, err, ErrStrict)
	var se *SyntaxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, InvalidTerm, se.Kind)

	_, err = ParseStrict("urgency=hihg", []Worker{{WorkerName: "AWorker", QueueName: "a", Urgency: "high"}})
	require.ErrorAs(t, err, &se)
	require.Equal(t, UnknownValue, se.Kind)
	require.Equal(t, 8, se.Offset)
}

const lintDoc = `# line 1
- [feature_category=global_search&urgency=throttled, elasticsearch]
- ['urgency=high ', 5]
- [urgency=low, '  ']
- [urgency=high, 'a,b']
- [feature_category=not_owned, dummies]
- [feature_category=nonexistent, nowhere]
- ['*', default]
- [urgency=throttled, x]
- [colour=red, y]
`

func TestLintRules(t *testing.T) {
	t.Run("without workers", func(t *testing.T) {
		got := LintRules([]byte(lintDoc), nil)
		var lines []string
		for _, f := range got {
			lines = append(lines, f.String())
		}
		require.Equal(t, []string{
			`rule 1 (line 3): selector "urgency=high ": offset 12: trailing-text: whitespace after the value list (" "); GitLab ignores it and reads "urgency=high"`,
			`rule 1 (line 3): queue-not-string: queue is the integer 5, not a string; GitLab uses the queue "5"; quote it`,
			`rule 2 (line 4): blank-queue: queue "  " is whitespace only; GitLab treats it as null: the generated queue name; write null`,
			`rule 3 (line 5): unlistenable-queue: queue "a,b" has a comma, whitespace or a control character; GitLab routes to it, but a sidekiq-cluster command line cannot name it`,
			`rule 7 (line 9): unreachable: comes after rule 6, which matches every worker; GitLab never reaches it`,
			`rule 8 (line 10): selector "colour=red": offset 0: unknown-attribute: unknown attribute "colour"; want one of ` + attributeList + `; GitLab raises UnknownPredicate`,
			`no-catch-all: the last rule is not ["*", queue]; GitLab logs a warning and sends workers no rule matches to their generated queue names`,
		}, lines)
	})
	t.Run("with workers", func(t *testing.T) {
		workers := slices.Collect(func(yield func(Worker) bool) {
			for _, w := range probeWorkers() {
				if !yield(w) {
					return
				}
			}
		})
		got := LintRules([]byte(lintDoc), workers)
		var kinds []string
		for _, f := range got {
			kinds = append(kinds, f.Kind.String()+"@"+itoa(f.Rule+1))
		}
		require.Equal(t, []string{
			"trailing-text@2", "queue-not-string@2", "blank-queue@3",
			"unlistenable-queue@4", "unreachable@4", // urgency=high: PostReceive is routed by rule 1
			"matches-nothing@5", // only the dummies have not_owned
			"unknown-value@6", "matches-nothing@6",
			"unreachable@8", "unknown-attribute@9", "no-catch-all@0",
		}, kinds)
		require.Contains(t, got[5].Msg, "dummy entries")
	})
	t.Run("document errors", func(t *testing.T) {
		require.Equal(t, []Problem{RulesNotList}, kindsOf(LintRules([]byte("null"), nil)))
		require.Equal(t, []Problem{InvalidDocument}, kindsOf(LintRules([]byte("[a"), nil)))
		got := LintRules([]byte("- [a]\n- [null, q]\n- ['*', [x]]\n"), nil)
		require.Equal(t, []Problem{RuleNotPair, SelectorNotString, UnsupportedValue}, kindsOf(got))
		require.Contains(t, got[2].GitLab, "Ferry refuses")
	})
	t.Run("clean rules", func(t *testing.T) {
		require.Empty(t, LintRules([]byte(`[["feature_category=global_search", "search"], ["*", null]]`), nil))
		require.Equal(t, []Problem{NoCatchAll}, kindsOf(LintRules([]byte(`[]`), nil)))
	})
}

func TestParseRulesStrict(t *testing.T) {
	_, err := ParseRulesStrict([]byte(lintDoc), nil)
	require.ErrorIs(t, err, ErrInvalidSelector) // rule 8 fails in GitLab too
	require.NotErrorIs(t, err, ErrStrict)

	doc := strings.Replace(lintDoc, "- [colour=red, y]\n", "", 1)
	rules, err := ParseRules([]byte(doc))
	require.NoError(t, err, "GitLab accepts the rest")
	require.Len(t, rules, 8)
	_, err = ParseRulesStrict([]byte(doc), nil)
	require.ErrorIs(t, err, ErrStrict)
	require.ErrorIs(t, err, ErrInvalidRule)
	var re *RuleError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 1, re.Index)
	require.Equal(t, 3, re.Line)
	require.Equal(t, TrailingText, re.Kind)
	var se *SyntaxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 12, se.Offset)

	_, err = ParseRulesStrict([]byte("- [urgency=high, '  ']\n"), nil)
	require.ErrorAs(t, err, &re)
	require.Equal(t, BlankQueue, re.Kind)
	require.NotErrorAs(t, err, &se)

	// Notices do not fail.
	rules, err = ParseRulesStrict([]byte(`[["urgency=high", "urgent"]]`), nil)
	require.NoError(t, err)
	require.Equal(t, []Rule{{Query: "urgency=high", Queue: "urgent"}}, rules)
}
