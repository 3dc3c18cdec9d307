package routing

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct {
		query, canonical string
	}{
		{"*", "*"},
		{"  *\t", "*"},
		{"urgency=high", "urgency=high"},
		{"urgency!=high", "urgency!=high"},
		{"urgency=high,low", "urgency=high,low"},
		{"urgency=high,low,high", "urgency=high,low"},
		{"urgency!=throttled,low", "urgency!=throttled,low"},
		{"feature_category=global_search&urgency=throttled", "feature_category=global_search&urgency=throttled"},
		{"urgency=high|resource_boundary=memory", "urgency=high|resource_boundary=memory"},
		{" urgency = high , low & tags != a | name=x ", "urgency=high,low&tags!=a|name=x"},
		{"has_external_dependencies=true", "has_external_dependencies=true"},
		{"has_external_dependencies!=false", "has_external_dependencies!=false"},
		{"worker_name=Elastic::MigrationWorker", "worker_name=Elastic::MigrationWorker"},
		{"name=cronjob:elastic_migration", "name=cronjob:elastic_migration"},
		{"queue_namespace=cronjob", "queue_namespace=cronjob"},
		{"tags=a,b", "tags=a,b"},
		// Same attribute twice in one alternative is an AND of both terms.
		{"urgency=high&urgency!=low", "urgency=high&urgency!=low"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s, err := Parse(tt.query)
			require.NoError(t, err)
			require.Equal(t, tt.canonical, s.String())
			again, err := Parse(s.String())
			require.NoError(t, err)
			require.Equal(t, s, again)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		offset int
		msg    string
	}{
		{"empty query", "", 0, "empty query"},
		{"blank query", "   ", 3, "empty query"},
		{"star with more", "* | urgency=high", 0, "* matches every worker and must be the whole query"},
		{"star in term", "urgency=high|*", 13, "* matches every worker and must be the whole query"},
		{"star in value", "urgency=hi*", 10, `unexpected "*" after value`},
		{"lone pipe", "|", 0, "empty alternative before |"},
		{"leading pipe", "|urgency=high", 0, "empty alternative before |"},
		{"trailing pipe", "urgency=high|", 13, "empty alternative after |"},
		{"double pipe", "urgency=high||urgency=low", 13, "empty alternative after |"},
		{"trailing amp", "urgency=high&", 13, "empty term after &"},
		{"leading amp", "&urgency=high", 0, "empty term before &"},
		{"double amp", "urgency=high&&tags=a", 13, "empty term after &"},
		{"amp before pipe", "urgency=high&|tags=a", 13, "empty term after &"},
		{"no operator", "feature_category", 16, `term "feature_category" has no operator`},
		{"no operator before amp", "urgency&tags=a", 7, `term "urgency" has no operator`},
		{"bang without equals", "urgency!high", 7, `unexpected "!" after attribute "urgency"; want = or !=`},
		{"space instead of operator", "urgency high", 8, `unexpected "h" after attribute "urgency"`},
		{"missing attribute", "=high", 0, "missing attribute before ="},
		{"missing attribute negated", "!=high", 0, "missing attribute before !="},
		{"unknown attribute", "urgency=high&colour=red", 13, `unknown attribute "colour"; want one of feature_category,`},
		{"attribute case matters", "Urgency=high", 0, `unknown attribute "Urgency"`},
		{"missing value", "urgency=", 8, "missing value after ="},
		{"missing value negated", "urgency!=", 9, "missing value after !="},
		{"missing value before amp", "urgency=&tags=a", 8, "missing value after ="},
		{"trailing comma", "urgency=high,", 13, "missing value after ,"},
		{"empty value", "urgency=high,,low", 13, "empty value before ,"},
		{"leading comma", "urgency=,high", 8, "empty value before ,"},
		{"double equals", "urgency==high", 8, `unexpected "=" in value of "urgency"`},
		{"equals in value", "urgency=a=b", 9, `unexpected "=" after value`},
		{"space in value", "urgency=high low", 13, `unexpected "l" after value`},
		{"bad boolean", "has_external_dependencies=yes", 26, `has_external_dependencies takes true or false, got "yes"`},
		{"bad boolean in list", "has_external_dependencies=true,TRUE", 31, "takes true or false"},
		{"control byte", "urgency=hi\x00gh", 10, "byte 0x00"},
		{"non-ASCII", "urgency=h\xc3\xa9", 9, "byte 0xc3"},
		{"bad attribute character", "urg-ency=high", 0, `unknown attribute "urg-ency"`},
		{"punctuation first", ",urgency=high", 0, `unexpected ","; want an attribute name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.query)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalidSelector), "errors.Is(ErrInvalidSelector): %v", err)
			var se *SyntaxError
			require.True(t, errors.As(err, &se))
			require.Equal(t, tt.query, se.Query)
			require.Equal(t, tt.offset, se.Offset, "offset in %q: %v", tt.query, err)
			require.Contains(t, se.Msg, tt.msg)
			require.Contains(t, err.Error(), "offset")
		})
	}
}

func TestZeroSelector(t *testing.T) {
	var s Selector
	require.False(t, s.Match(Worker{QueueName: "q"}))
	require.Equal(t, "", s.String())
}
