package routing

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClusterQueueGroups(t *testing.T) {
	workers := append(DummyWorkers(),
		Worker{WorkerName: "PostReceive", QueueName: "post_receive", Urgency: "high"},
		Worker{WorkerName: "Elastic::MigrationWorker", QueueName: "cronjob:elastic_migration", Urgency: "throttled", QueueNamespace: "cronjob"},
		Worker{WorkerName: "PagesDomainSslRenewalCronWorker", QueueName: "cronjob:pages_domain_ssl_renewal_cron", Urgency: "low", QueueNamespace: "cronjob"},
	)
	all := []string{"default", "mailers", "post_receive", "cronjob:elastic_migration", "cronjob:pages_domain_ssl_renewal_cron"}
	tests := []struct {
		name string
		args []string
		opts ClusterOptions
		want [][]string
		err  string
	}{
		{"selector groups", []string{"urgency=high", "urgency=throttled|urgency=low"}, ClusterOptions{QueueSelector: true},
			[][]string{{"post_receive"}, {"cronjob:elastic_migration", "cronjob:pages_domain_ssl_renewal_cron"}}, ""},
		{"negated selector", []string{"urgency=low"}, ClusterOptions{QueueSelector: true, Negate: true},
			[][]string{{"default", "mailers", "post_receive", "cronjob:elastic_migration"}}, ""},
		{"star", []string{"*"}, ClusterOptions{}, [][]string{all}, ""},
		{"star selector", []string{" * "}, ClusterOptions{QueueSelector: true}, [][]string{all}, ""},
		{"negated star is empty", []string{"*"}, ClusterOptions{Negate: true}, nil, "no queues found"},
		{"queue names with namespace expansion", []string{"cronjob,mailers", "post_receive,unknown"}, ClusterOptions{},
			[][]string{{"cronjob", "cronjob:elastic_migration", "cronjob:pages_domain_ssl_renewal_cron", "mailers"}, {"post_receive", "unknown"}}, ""},
		{"negated names", []string{"cronjob,default"}, ClusterOptions{Negate: true},
			[][]string{{"mailers", "post_receive"}}, ""},
		{"one empty group is fine", []string{"urgency=high", "tags=none"}, ClusterOptions{QueueSelector: true},
			[][]string{{"post_receive"}, {}}, ""},
		{"nothing selected", []string{"tags=none"}, ClusterOptions{QueueSelector: true}, nil, "no queues found"},
		{"no arguments", nil, ClusterOptions{}, nil, "at least one"},
		{"line break", []string{"urgency=high\nurgency=low"}, ClusterOptions{QueueSelector: true}, nil, "line breaks"},
		{"bad selector", []string{"urgency=high", "colour=red"}, ClusterOptions{QueueSelector: true}, nil, `argument 1: routing: selector "colour=red"`},
		{"bad pattern", []string{"a(b"}, ClusterOptions{}, nil, "not a valid pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ClusterQueueGroups(workers, tt.args, tt.opts)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSelectQueuesErrors(t *testing.T) {
	_, err := SelectQueues(nil, "urgency=high\r", false)
	require.ErrorIs(t, err, ErrInvalidSelector)
	_, err = SelectQueues(nil, "urgency=", false)
	var se *SyntaxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, InvalidTerm, se.Kind)
}
