package routing

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// probeWorkers are the workers the semantics tables match against: three
// ordinary workers, one whose category is written with a dash, and GitLab's
// two dummy entries.
func probeWorkers() map[string]Worker {
	probes := map[string]Worker{
		"post": {WorkerName: "PostReceive", QueueName: "post_receive", FeatureCategory: "source_code_management",
			Urgency: "high", ResourceBoundary: "cpu", Nil: AttrQueueNamespace},
		"indexer": {WorkerName: "ElasticCommitIndexerWorker", QueueName: "elastic_commit_indexer", FeatureCategory: "global_search",
			Urgency: "throttled", ResourceBoundary: "memory", HasExternalDependencies: true, Tags: []string{"a"}, Nil: AttrQueueNamespace},
		"cron": {WorkerName: "Elastic::MigrationWorker", QueueName: "cronjob:elastic_migration", FeatureCategory: "global_search",
			Urgency: "low", ResourceBoundary: "unknown", Tags: []string{"a", "b"}, QueueNamespace: "cronjob"},
		"addon": {WorkerName: "GitlabSubscriptions::AddOnPurchases::RefreshWorker", QueueName: "gitlab_subscriptions_add_on_purchases_refresh",
			FeatureCategory: "add-on_provisioning", Urgency: "low", ResourceBoundary: "unknown", Nil: AttrQueueNamespace},
	}
	d := DummyWorkers()
	probes["default"], probes["mailers"] = d[0], d[1]
	return probes
}

func matching(sel Selector) []string {
	var names []string
	for name, w := range probeWorkers() {
		if sel.Match(w) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

var everyProbe = []string{"addon", "cron", "default", "indexer", "mailers", "post"}

// The cases of gitlab-semantics.md §2-§5, each with what GitLab reads: the
// canonical form and the probes it matches, or the error kind and offset.
func TestGitLabSelectorSemantics(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		canonical string   // when it parses
		matches   []string // when it parses
		kind      Problem  // when it does not
		offset    int
	}{
		// §2 splitting.
		{name: "empty selector matches nothing", query: "", canonical: "", matches: nil},
		{name: "lone pipe matches nothing", query: "|", canonical: "", matches: nil},
		{name: "pipes only", query: "|||", canonical: "", matches: nil},
		{name: "trailing pipe dropped", query: "urgency=high|", canonical: "urgency=high", matches: []string{"post"}},
		{name: "lone amp matches everything", query: "&", canonical: "*", matches: everyProbe},
		{name: "empty middle alternative matches everything", query: "urgency=high||urgency=low", canonical: "*", matches: everyProbe},
		{name: "empty leading alternative matches everything", query: "|urgency=high", canonical: "*", matches: everyProbe},
		{name: "alternative of amps matches everything", query: "urgency=high|&&", canonical: "*", matches: everyProbe},
		{name: "trailing amp dropped", query: "urgency=high&", canonical: "urgency=high", matches: []string{"post"}},
		{name: "empty middle term", query: "urgency=high&&tags=x", kind: InvalidTerm, offset: 13},
		{name: "empty leading term", query: "&urgency=high", kind: InvalidTerm, offset: 0},
		{name: "whitespace only", query: "   ", kind: InvalidTerm, offset: 0},
		{name: "star", query: "*", canonical: "*", matches: everyProbe},
		{name: "star with spaces", query: "  *  ", canonical: "*", matches: everyProbe},
		{name: "star with tab and newline", query: "\t*\n", canonical: "*", matches: everyProbe},
		{name: "star and term", query: "*&urgency=high", kind: InvalidTerm, offset: 0},
		{name: "star or term", query: "*|urgency=high", kind: InvalidTerm, offset: 0},
		{name: "term or star", query: "urgency=high|*", kind: InvalidTerm, offset: 13},
		// §3 term syntax.
		{name: "trailing space ignored", query: "urgency=high ", canonical: "urgency=high", matches: []string{"post"}},
		{name: "trailing quote ignored", query: `urgency=throttled"`, canonical: "urgency=throttled", matches: []string{"indexer"}},
		{name: "dash ends the value", query: "feature_category=add-on_provisioning", canonical: "feature_category=add", matches: nil},
		{name: "second equals ignored", query: "urgency=high=low", canonical: "urgency=high", matches: []string{"post"}},
		{name: "term on its second line", query: "x\nurgency=high", canonical: "urgency=high", matches: []string{"post"}},
		{name: "leading space", query: " urgency=high", kind: InvalidTerm, offset: 0},
		{name: "space before operator", query: "urgency = high", kind: InvalidTerm, offset: 7},
		{name: "space after amp", query: "urgency=high & tags=a", kind: InvalidTerm, offset: 14},
		{name: "empty value", query: "urgency=", kind: InvalidTerm, offset: 8},
		{name: "quoted value", query: `feature_category="x"`, kind: InvalidTerm, offset: 17},
		{name: "double equals", query: "urgency==high", kind: InvalidTerm, offset: 8},
		{name: "tilde", query: "urgency~high", kind: InvalidTerm, offset: 7},
		{name: "angle brackets", query: "urgency<>high", kind: InvalidTerm, offset: 7},
		{name: "bare bang", query: "urgency!high", kind: InvalidTerm, offset: 7},
		{name: "no operator", query: "urgency", kind: InvalidTerm, offset: 7},
		{name: "no attribute", query: "=high", kind: InvalidTerm, offset: 0},
		{name: "trailing comma dropped", query: "urgency=high,", canonical: "urgency=high", matches: []string{"post"}},
		{name: "only a comma: = matches nothing", query: "urgency=,", canonical: "urgency=,", matches: nil},
		{name: "only a comma: != matches everything", query: "urgency!=,", canonical: "urgency!=,", matches: everyProbe},
		{name: "empty middle value matches nothing", query: "urgency=high,,low", canonical: "urgency=high,low", matches: []string{"addon", "cron", "post"}},
		{name: "values are case-sensitive", query: "urgency=HIGH", canonical: "urgency=HIGH", matches: nil},
		{name: "duplicates dropped", query: "urgency=high,low,high", canonical: "urgency=high,low", matches: []string{"addon", "cron", "post"}},
		// §4 attributes.
		{name: "attribute names are case-sensitive", query: "Urgency=high", kind: UnknownAttribute, offset: 0},
		{name: "weight is not an attribute", query: "weight=1", kind: UnknownAttribute, offset: 0},
		{name: "idempotent is not an attribute", query: "idempotent=true", kind: UnknownAttribute, offset: 0},
		{name: "unknown attribute in second term", query: "urgency=high&colour=red", kind: UnknownAttribute, offset: 13},
		{name: "external true", query: "has_external_dependencies=true", canonical: "has_external_dependencies=true", matches: []string{"indexer"}},
		{name: "external false skips nil", query: "has_external_dependencies=false", canonical: "has_external_dependencies=false", matches: []string{"addon", "cron", "post"}},
		{name: "external yes means false", query: "has_external_dependencies=yes", canonical: "has_external_dependencies=false", matches: []string{"addon", "cron", "post"}},
		{name: "external TRUE means false", query: "has_external_dependencies=TRUE", canonical: "has_external_dependencies=false", matches: []string{"addon", "cron", "post"}},
		{name: "external not true includes nil", query: "has_external_dependencies!=true", canonical: "has_external_dependencies!=true", matches: []string{"addon", "cron", "default", "mailers", "post"}},
		{name: "external empty middle value is false", query: "has_external_dependencies=,true", canonical: "has_external_dependencies=true,false", matches: []string{"addon", "cron", "indexer", "post"}},
		{name: "mailers urgency is a String", query: "urgency=low", canonical: "urgency=low", matches: []string{"addon", "cron"}},
		{name: "mailers matches urgency not low", query: "urgency!=low", canonical: "urgency!=low", matches: []string{"default", "indexer", "mailers", "post"}},
		{name: "nil namespace never equals", query: "queue_namespace=cronjob", canonical: "queue_namespace=cronjob", matches: []string{"cron"}},
		{name: "nil namespace always differs", query: "queue_namespace!=cronjob", canonical: "queue_namespace!=cronjob", matches: []string{"addon", "default", "indexer", "mailers", "post"}},
		{name: "nil worker name never equals", query: "worker_name=PostReceive", canonical: "worker_name=PostReceive", matches: []string{"post"}},
		{name: "mailers class", query: "worker_name=ActionMailer::MailDeliveryJob", canonical: "worker_name=ActionMailer::MailDeliveryJob", matches: []string{"mailers"}},
		{name: "name is the queue name", query: "name=cronjob:elastic_migration,default", canonical: "name=cronjob:elastic_migration,default", matches: []string{"cron", "default"}},
		{name: "feature category of dummies", query: "feature_category=not_owned", canonical: "feature_category=not_owned", matches: []string{"default", "mailers"}},
		{name: "tags contains", query: "tags=b", canonical: "tags=b", matches: []string{"cron"}},
		{name: "tags contains any", query: "tags=a,b", canonical: "tags=a,b", matches: []string{"cron", "indexer"}},
		{name: "tags contains both", query: "tags=a&tags=b", canonical: "tags=a&tags=b", matches: []string{"cron"}},
		{name: "tags contains neither", query: "tags!=a,b", canonical: "tags!=a,b", matches: []string{"addon", "default", "mailers", "post"}},
		{name: "seed rule", query: "feature_category=global_search&urgency=throttled", canonical: "feature_category=global_search&urgency=throttled", matches: []string{"indexer"}},
		{name: "or of ands", query: "urgency=high|feature_category=global_search&tags=b", canonical: "urgency=high|feature_category=global_search&tags=b", matches: []string{"cron", "post"}},
		// §5 the first bad term decides, left to right.
		{name: "unknown before invalid", query: "colour=red&urgency=", kind: UnknownAttribute, offset: 0},
		{name: "invalid before unknown", query: "urgency=&colour=red", kind: InvalidTerm, offset: 8},
		{name: "error after a catch-all alternative", query: "&|urgency=", kind: InvalidTerm, offset: 10},
		{name: "invalid UTF-8", query: "urgency=h\xc3", kind: InvalidEncoding, offset: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := Parse(tt.query)
			if tt.kind != 0 {
				require.Error(t, err)
				var se *SyntaxError
				require.ErrorAs(t, err, &se)
				require.ErrorIs(t, err, ErrInvalidSelector)
				require.NotErrorIs(t, err, ErrStrict)
				require.Equal(t, tt.kind, se.Kind, "%v", err)
				require.Equal(t, tt.offset, se.Offset, "%v", err)
				require.Equal(t, tt.query, se.Query)
				require.Equal(t, Selector{}, sel)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.canonical, sel.String())
			require.Equal(t, tt.matches, matching(sel))
			again, err := Parse(sel.String())
			require.NoError(t, err)
			require.Equal(t, sel, again, "canonical form %q parses to the same selector", sel.String())
		})
	}
}

func TestSyntaxErrorMessages(t *testing.T) {
	tests := []struct{ query, msg string }{
		{" urgency=high", "leading whitespace"},
		{"urgency = high", "whitespace before the operator"},
		{"urgency= high", "whitespace after the operator"},
		{`feature_category="x"`, "quotes are not part of the selector language"},
		{"urgency==high", "== is not an operator"},
		{"urgency", "no operator"},
		{"=high", "missing attribute"},
		{"urgency=", "missing value"},
		{"*|a=b", "* matches every worker only as the whole selector"},
		{"&a=b", "empty term before &"},
		{"urgency=high&&tags=a", "empty term after &"},
		{"colour=red", `unknown attribute "colour"; want one of feature_category,`},
		{"urgency=h\xff", "not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.query)
		require.ErrorContains(t, err, tt.msg, tt.query)
		require.ErrorContains(t, err, "GitLab", tt.query)
	}
}

func TestZeroSelector(t *testing.T) {
	var s Selector
	require.False(t, s.Match(Worker{QueueName: "q"}))
	require.Equal(t, "", s.String())
	parsed, err := Parse("")
	require.NoError(t, err)
	require.Equal(t, s, parsed)
}

// Value lists are read in linear time: a list of 40,000 distinct values, and
// one of 40,000 copies of one value, parse and match like short ones.
func TestLongValueLists(t *testing.T) {
	vals := make([]string, 40_000)
	for i := range vals {
		vals[i] = "W" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i)
	}
	sel, err := Parse("worker_name=" + strings.Join(vals, ","))
	require.NoError(t, err)
	require.True(t, sel.Match(Worker{WorkerName: vals[39_999]}))
	require.True(t, sel.Match(Worker{WorkerName: vals[0]}))
	require.False(t, sel.Match(Worker{WorkerName: "Other"}))

	same, err := Parse("urgency=" + strings.Repeat("high,", 40_000))
	require.NoError(t, err)
	require.Equal(t, "urgency=high", same.String())
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestProblemClasses(t *testing.T) {
	for p, name := range problemNames {
		require.Equal(t, name, p.String())
		classes := 0
		for _, c := range []bool{p.GitLabRejects(), p.FerryLimit(), p.Strict(), p.Notice()} {
			if c {
				classes++
			}
		}
		require.Equal(t, 1, classes, "%s is in exactly one class", p)
	}
	require.Equal(t, "Problem(250)", Problem(250).String())
	se := &SyntaxError{Kind: TrailingText}
	require.True(t, errors.Is(se, ErrStrict))
}
