package routing

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The worker table of seed 004: the rule that moves global search onto the
// elasticsearch shard selects exactly these workers, whose current queues are
// their generated queue names.
func TestSeedRuleSelectsSearchWorkers(t *testing.T) {
	seed := map[string]string{
		"ElasticClusterReindexingCronWorker": "cronjob:elastic_cluster_reindexing_cron",
		"ElasticIndexBulkCronWorker":         "cronjob:elastic_index_bulk_cron",
		"ElasticIndexInitialBulkCronWorker":  "cronjob:elastic_index_initial_bulk_cron",
		"Elastic::MigrationWorker":           "cronjob:elastic_migration",
		"ElasticCommitIndexerWorker":         "elastic_commit_indexer",
		"ElasticDeleteProjectWorker":         "elastic_delete_project",
	}
	sel, err := Parse("feature_category=global_search&urgency=throttled")
	require.NoError(t, err)

	selected := make(map[string]string)
	for _, w := range readTestWorkers(t) {
		if sel.Match(w) {
			selected[w.WorkerName] = GeneratedQueueName(w)
		}
	}
	require.Equal(t, seed, selected)

	r := mustRouter(t, []Rule{{Query: sel.String(), Queue: "elasticsearch"}}, &Options{DefaultQueue: "default"})
	tab, err := r.Table(readTestWorkers(t))
	require.NoError(t, err)
	var ids []string
	for _, w := range tab.Workers("elasticsearch") {
		ids = append(ids, w.ID())
	}
	require.ElementsMatch(t, []string{
		"ElasticClusterReindexingCronWorker", "ElasticIndexBulkCronWorker", "ElasticIndexInitialBulkCronWorker",
		"Elastic::MigrationWorker", "ElasticCommitIndexerWorker", "ElasticDeleteProjectWorker",
	}, ids)
}
