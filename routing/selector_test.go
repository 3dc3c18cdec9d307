package routing

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSelectorMatch(t *testing.T) {
	search := Worker{
		WorkerName:       "Elastic::MigrationWorker",
		QueueName:        "cronjob:elastic_migration",
		FeatureCategory:  "global_search",
		Urgency:          "throttled",
		ResourceBoundary: "unknown",
		QueueNamespace:   "cronjob",
		Tags:             []string{"search", "cron"},
	}
	importer := Worker{
		WorkerName:              "RepositoryImportWorker",
		QueueName:               "repository_import",
		FeatureCategory:         "importers",
		Urgency:                 "low",
		ResourceBoundary:        "memory",
		HasExternalDependencies: true,
	}
	tests := []struct {
		query            string
		search, importer bool
	}{
		{"*", true, true},
		// = and != on every single-valued attribute.
		{"worker_name=Elastic::MigrationWorker", true, false},
		{"worker_name!=Elastic::MigrationWorker", false, true},
		{"name=cronjob:elastic_migration,repository_import", true, true},
		{"name!=cronjob:elastic_migration,repository_import", false, false},
		{"feature_category=global_search", true, false},
		{"feature_category!=global_search", false, true},
		{"urgency=throttled,low", true, true},
		{"urgency=high", false, false},
		{"urgency!=high", true, true},
		{"resource_boundary=memory", false, true},
		{"resource_boundary!=memory", true, false},
		{"queue_namespace=cronjob", true, false},
		{"queue_namespace!=cronjob", false, true},
		// An empty namespace equals no listed value.
		{"queue_namespace!=cronjob,geo", false, true},
		// Booleans compare as true/false.
		{"has_external_dependencies=true", false, true},
		{"has_external_dependencies=false", true, false},
		{"has_external_dependencies!=true", true, false},
		{"has_external_dependencies=true,false", true, true},
		// tags: = is "has any of these", != is "has none of them".
		{"tags=search", true, false},
		{"tags=other,cron", true, false},
		{"tags=other", false, false},
		{"tags!=search", false, true},
		{"tags!=other", true, true},
		{"tags!=other,cron", false, true},
		// & needs every term, | any alternative.
		{"feature_category=global_search&urgency=throttled", true, false},
		{"feature_category=global_search&urgency=low", false, false},
		{"feature_category=global_search|urgency=low", true, true},
		{"urgency=high|resource_boundary=cpu", false, false},
		{"feature_category=importers&has_external_dependencies=true|tags=search", true, true},
		// Values compare exactly: no globbing, no case folding.
		{"feature_category=Global_Search", false, false},
		{"worker_name=Elastic", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s, err := Parse(tt.query)
			require.NoError(t, err)
			require.Equal(t, tt.search, s.Match(search), "search worker")
			require.Equal(t, tt.importer, s.Match(importer), "importer worker")
		})
	}
}
