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

	// Only a Worker built in code can carry a class name that makes no queue.
	_, err = r.Table([]Worker{{WorkerName: "Odd Name"}})
	require.ErrorIs(t, err, ErrInvalidQueue)
	require.ErrorContains(t, err, `"odd name" for worker "Odd Name"`)

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
