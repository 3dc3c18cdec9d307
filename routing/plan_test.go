package routing

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func routerFromFile(t testing.TB, path string) *Router {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	rules, err := ParseRules(data)
	require.NoError(t, err)
	return mustRouter(t, rules, nil)
}

// The elasticsearch shard roll-out with the sample data.
func TestPlanSample(t *testing.T) {
	workers := readTestWorkers(t)
	before := routerFromFile(t, "testdata/rules_before.yml")
	after := routerFromFile(t, "testdata/rules_after.json")

	p, err := Plan(before, after, workers)
	require.NoError(t, err)

	searchQueues := []string{
		"cronjob:elastic_cluster_reindexing_cron",
		"cronjob:elastic_index_bulk_cron",
		"cronjob:elastic_index_initial_bulk_cron",
		"cronjob:elastic_migration",
		"elastic_commit_indexer",
		"elastic_delete_project",
	}
	require.Equal(t, []string{"elasticsearch"}, p.NewQueues)
	require.Equal(t, searchQueues, p.Retire)
	require.Len(t, p.Changes, 6)
	for _, c := range p.Changes {
		require.Equal(t, "elasticsearch", c.To)
		require.Equal(t, c.Worker.QueueName, c.From)
	}

	groups := make(map[string][]string)
	for _, g := range p.Listen {
		groups[g.Name] = g.Queues
	}
	require.Equal(t, append([]string{"elasticsearch"}, searchQueues...), groups["elasticsearch"])
	require.Equal(t, []string{"default"}, groups["default"])
	require.Equal(t, []string{"elastic_indexing_control"}, groups["elastic_indexing_control"])
	require.Len(t, p.Listen, 11)
	require.Len(t, p.Final, 11)
	for _, g := range p.Final {
		require.Equal(t, []string{g.Name}, g.Queues)
	}

	require.Len(t, p.Drain, 6)
	require.Equal(t, DrainQueue{Queue: "elastic_commit_indexer", To: []string{"elasticsearch"}, Workers: []string{"ElasticCommitIndexerWorker"}}, p.Drain[4])

	require.Len(t, p.Warnings, 2)
	require.Equal(t, WarnDependsOnQueueName, p.Warnings[0].Kind)
	require.Equal(t, "ElasticDeleteProjectWorker", p.Warnings[0].Change.Worker.ID())
	require.Equal(t, WarnLimitedCapacity, p.Warnings[1].Kind)
	require.Equal(t, "ElasticIndexBulkCronWorker", p.Warnings[1].Change.Worker.ID())

	steps := p.Steps()
	require.Len(t, steps, 4)
	for i, s := range steps {
		require.Equal(t, i+1, s.Number)
		require.NotEmpty(t, s.Title)
		require.NotEmpty(t, s.Lines)
	}
	require.Equal(t, "$ sidekiq-cluster --dryrun authorized_projects default elastic_indexing_control "+
		"elasticsearch,"+strings.Join(searchQueues, ",")+
		" geo:geo_container_repository_sync github_importer:github_import_import_issue mailers new_issue post_receive project_export repository_import",
		steps[0].Lines[len(steps[0].Lines)-1])
	require.Equal(t, "$ sidekiq-cluster --dryrun authorized_projects default elastic_indexing_control elasticsearch "+
		"geo:geo_container_repository_sync github_importer:github_import_import_issue mailers new_issue post_receive project_export repository_import",
		steps[3].Lines[len(steps[3].Lines)-1])

	out := p.String()
	require.True(t, strings.HasPrefix(out, "Warnings (resolve before step 2):\n  ! ElasticDeleteProjectWorker (elastic_delete_project -> elasticsearch) depends on its own queue name"), out)
	for _, want := range []string{
		"\n1. Servers: listen to old and new queues",
		"\n2. Clients: switch to the new routing rules\n   Elastic::MigrationWorker: cronjob:elastic_migration -> elasticsearch\n",
		"\n3. Drain or migrate jobs left in old queues\n",
		"   elastic_commit_indexer: wait until empty or move its jobs to elasticsearch (ElasticCommitIndexerWorker)\n",
		"\n4. Servers: stop listening to queues nothing routes to\n   stop: cronjob:elastic_cluster_reindexing_cron",
	} {
		require.Contains(t, out, want)
	}
}

func TestPlanScenarios(t *testing.T) {
	workers := []Worker{
		{WorkerName: "SearchWorker", FeatureCategory: "global_search", LimitedCapacity: true},
		{WorkerName: "FastWorker", Urgency: "high"},
		{WorkerName: "SlowWorker", Urgency: "low", DependsOnQueueName: true},
	}
	t.Run("old queue stays in use", func(t *testing.T) {
		// Moving one worker out of a shared queue that keeps other workers: its
		// own group still serves the shared queue, so nobody takes it over.
		before := mustRouter(t, []Rule{{Query: "*", Queue: "default"}}, nil)
		after := mustRouter(t, []Rule{{Query: "feature_category=global_search", Queue: "elasticsearch"}, {Query: "*", Queue: "default"}}, nil)
		p, err := Plan(before, after, workers)
		require.NoError(t, err)
		require.Equal(t, []ServerGroup{{"default", []string{"default"}}, {"elasticsearch", []string{"elasticsearch"}}}, p.Listen)
		require.Equal(t, []string{"elasticsearch"}, p.NewQueues)
		require.Empty(t, p.Retire)
		require.Empty(t, p.Drain)
		require.Equal(t, []Warning{{Kind: WarnLimitedCapacity, Change: Change{Worker: workers[0], From: "default", To: "elasticsearch"}}}, p.Warnings)
		require.Contains(t, p.String(), "3. Drain or migrate jobs left in old queues\n   no old queue to drain\n")
		require.Contains(t, p.String(), "4. Servers: stop listening to queues nothing routes to\n   nothing to stop\n")
	})
	t.Run("old queue split in two", func(t *testing.T) {
		before := mustRouter(t, []Rule{{Query: "*", Queue: "shared"}}, nil)
		after := mustRouter(t, []Rule{{Query: "urgency=high", Queue: "fast"}}, &Options{DefaultQueue: "slow"})
		p, err := Plan(before, after, workers)
		require.NoError(t, err)
		require.Equal(t, []ServerGroup{{"fast", []string{"fast", "shared"}}, {"slow", []string{"slow", "shared"}}}, p.Listen)
		require.Equal(t, []ServerGroup{{"fast", []string{"fast"}}, {"slow", []string{"slow"}}}, p.Final)
		require.Equal(t, []string{"shared"}, p.Retire)
		require.Equal(t, []DrainQueue{{Queue: "shared", To: []string{"fast", "slow"}, Workers: []string{"FastWorker", "SearchWorker", "SlowWorker"}}}, p.Drain)
		require.Equal(t, "sidekiq-cluster --dryrun fast,shared slow,shared", DryRunCommand(p.Listen))
		require.Len(t, p.Warnings, 2)
		require.Equal(t, WarnLimitedCapacity, p.Warnings[0].Kind)
		require.Equal(t, WarnDependsOnQueueName, p.Warnings[1].Kind)
	})
	t.Run("no change", func(t *testing.T) {
		r := mustRouter(t, []Rule{{Query: "*"}}, nil)
		p, err := Plan(r, r, workers)
		require.NoError(t, err)
		require.Empty(t, p.Changes)
		require.Empty(t, p.Warnings)
		require.Empty(t, p.NewQueues)
		require.Equal(t, p.Listen, p.Final)
		require.Contains(t, p.String(), "2. Clients: switch to the new routing rules\n   no worker changes queue\n")
	})
	t.Run("errors", func(t *testing.T) {
		r := mustRouter(t, nil, nil)
		_, err := Plan(nil, r, workers)
		require.Error(t, err)
		_, err = Plan(r, nil, workers)
		require.Error(t, err)
		_, err = Plan(r, r, append(workers, workers[0]))
		require.ErrorIs(t, err, ErrDuplicateWorker)
		require.ErrorContains(t, err, "old rules")
	})
}

func TestWarningKindString(t *testing.T) {
	require.Equal(t, "depends-on-queue-name", WarnDependsOnQueueName.String())
	require.Equal(t, "limited-capacity", WarnLimitedCapacity.String())
	require.Equal(t, "WarningKind(9)", WarningKind(9).String())
}
