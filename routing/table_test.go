package routing

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoutingTable(t *testing.T) {
	r := mustRouter(t, []Rule{
		{Query: "feature_category=global_search&urgency=throttled", Queue: "elasticsearch"},
		{Query: "urgency=low", Queue: "default"},
	}, nil)
	workers := []Worker{
		{WorkerName: "ElasticDeleteProjectWorker", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "PostReceive", Urgency: "high"},
		{WorkerName: "ElasticCommitIndexerWorker", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "NewNoteWorker", Urgency: "low"},
		{QueueName: "legacy_queue", Urgency: "low"},
	}
	tab, err := r.Table(workers)
	require.NoError(t, err)
	require.Equal(t, 5, tab.Len())
	require.Equal(t, []string{"default", "elasticsearch", "post_receive"}, tab.Queues())
	require.Equal(t, []Worker{workers[2], workers[0]}, tab.Workers("elasticsearch"))
	require.Empty(t, tab.Workers("nope"))

	q, ok := tab.QueueOf("legacy_queue")
	require.True(t, ok)
	require.Equal(t, "default", q)
	_, ok = tab.QueueOf("Missing")
	require.False(t, ok)

	require.Equal(t, map[string]string{
		"ElasticCommitIndexerWorker": "elasticsearch",
		"ElasticDeleteProjectWorker": "elasticsearch",
		"NewNoteWorker":              "default",
		"PostReceive":                "post_receive",
		"legacy_queue":               "default",
	}, tab.Map())

	require.Equal(t, `default (2 workers)
  NewNoteWorker
  legacy_queue
elasticsearch (2 workers)
  ElasticCommitIndexerWorker
  ElasticDeleteProjectWorker
post_receive (1 worker)
  PostReceive
`, tab.String())

	// The table is a snapshot: changing the input afterwards does not affect it.
	workers[1].Urgency = "low"
	q, _ = tab.QueueOf("PostReceive")
	require.Equal(t, "post_receive", q)
}

func TestRoutingTableErrors(t *testing.T) {
	r := mustRouter(t, nil, nil)
	_, err := r.Table([]Worker{{WorkerName: "AWorker"}, {WorkerName: "BWorker"}, {WorkerName: "AWorker", QueueName: "x"}})
	require.ErrorIs(t, err, ErrDuplicateWorker)
	require.ErrorContains(t, err, `"AWorker"`)

	// GitLab checks no queue name, and neither does Table.
	tab, err := r.Table([]Worker{{WorkerName: "Odd Name"}})
	require.NoError(t, err)
	require.Equal(t, []string{"odd name"}, tab.Queues())

	var nilRouter *Router
	_, err = nilRouter.Table(nil)
	require.Error(t, err)
}

func TestDiff(t *testing.T) {
	workers := []Worker{
		{WorkerName: "AWorker", Urgency: "high"},
		{WorkerName: "BWorker", Urgency: "low"},
		{WorkerName: "CWorker", Urgency: "low"},
	}
	before, err := mustRouter(t, []Rule{{Query: "urgency=low", Queue: "default"}}, nil).Table(workers)
	require.NoError(t, err)
	after, err := mustRouter(t, []Rule{{Query: "urgency=high", Queue: "urgent"}, {Query: "worker_name=BWorker", Queue: "default"}}, nil).Table(append(workers[:2:2], Worker{WorkerName: "DWorker"}))
	require.NoError(t, err)

	changes := Diff(before, after)
	require.Equal(t, []Change{
		{Worker: workers[0], From: "a", To: "urgent"},
		{Worker: workers[2], From: "default"},
		{Worker: Worker{WorkerName: "DWorker"}, To: "d"},
	}, changes)
	require.Equal(t, "AWorker: a -> urgent", changes[0].String())
	require.Equal(t, "CWorker: default -> (none)", changes[1].String())
	require.Equal(t, "DWorker: (none) -> d", changes[2].String())

	require.Empty(t, Diff(before, before))
	require.Empty(t, Diff(nil, nil))
	require.Len(t, Diff(nil, before), 3)
}

// GitLab's dummy entries are never routed: they stay on their own queues
// whatever the rules say, in tables, maps and plans.
func TestDummiesAreNeverRouted(t *testing.T) {
	workers := append(DummyWorkers(), Worker{WorkerName: "PostReceive", QueueName: "post_receive", FeatureCategory: "source_code_management"})
	before := mustRouter(t, nil, nil)
	after := mustRouter(t, []Rule{{Query: "feature_category=not_owned", Queue: "elsewhere"}, {Query: "*", Queue: "default"}}, nil)
	tab, err := after.Table(workers)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"default":                       "default",
		"ActionMailer::MailDeliveryJob": "mailers",
		"PostReceive":                   "default",
	}, tab.Map())
	require.Equal(t, "mailers", after.Route(workers[1]))

	plan, err := Plan(before, after, workers)
	require.NoError(t, err)
	require.Len(t, plan.Changes, 1)
	require.Equal(t, "PostReceive", plan.Changes[0].Worker.ID())
	require.Equal(t, []string{"default", "mailers"}, tabQueues(t, before, workers))
}

func tabQueues(t *testing.T, r *Router, workers []Worker) []string {
	t.Helper()
	tab, err := r.Table(workers)
	require.NoError(t, err)
	var qs []string
	for _, q := range tab.Queues() {
		if q != "post_receive" {
			qs = append(qs, q)
		}
	}
	return qs
}
