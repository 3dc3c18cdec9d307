package routing

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustRouter(t testing.TB, rules []Rule, opts *Options) *Router {
	t.Helper()
	r, err := NewRouter(rules, opts)
	require.NoError(t, err)
	return r
}

func TestRouteFirstMatchWins(t *testing.T) {
	r := mustRouter(t, []Rule{
		{Query: "feature_category=global_search&urgency=throttled", Queue: "elasticsearch"},
		{Query: "feature_category=global_search"},
		{Query: "urgency=high", Queue: "urgent"},
		{Query: "resource_boundary=memory", Queue: "memory"},
	}, nil)
	tests := []struct {
		w    Worker
		want string
	}{
		{Worker{WorkerName: "ElasticCommitIndexerWorker", FeatureCategory: "global_search", Urgency: "throttled"}, "elasticsearch"},
		// Matches rules 1 and 2; the first wins.
		{Worker{WorkerName: "ElasticIndexingControlWorker", FeatureCategory: "global_search", Urgency: "high"}, "elastic_indexing_control"},
		// Matches rules 2 (null queue: generated name, with namespace) and 3.
		{Worker{WorkerName: "Elastic::MigrationWorker", QueueNamespace: "cronjob", FeatureCategory: "global_search"}, "cronjob:elastic_migration"},
		{Worker{WorkerName: "PostReceive", Urgency: "high", ResourceBoundary: "memory"}, "urgent"},
		{Worker{WorkerName: "ProjectExportWorker", ResourceBoundary: "memory"}, "memory"},
		// No rule: the generated name by default.
		{Worker{WorkerName: "Gitlab::GithubImport::ImportIssueWorker", QueueNamespace: "github_importer"}, "github_importer:github_import_import_issue"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, r.Route(tt.w), tt.w.ID())
		// Twice: the second call is a cache hit and must agree.
		require.Equal(t, tt.want, r.Route(tt.w), tt.w.ID())
	}
}

func TestRouteDefaultQueue(t *testing.T) {
	w := Worker{WorkerName: "NewIssueWorker", Urgency: "low"}
	rules := []Rule{{Query: "urgency=high", Queue: "urgent"}}

	require.Equal(t, "new_issue", mustRouter(t, rules, nil).Route(w))
	require.Equal(t, "new_issue", mustRouter(t, rules, &Options{}).Route(w))
	require.Equal(t, "default", mustRouter(t, rules, &Options{DefaultQueue: "default"}).Route(w))
	// No rules at all.
	require.Equal(t, "default", mustRouter(t, nil, &Options{DefaultQueue: "default"}).Route(w))
	require.Equal(t, "new_issue", mustRouter(t, nil, nil).Route(w))
}

func TestRouterRulesIsACopy(t *testing.T) {
	rules := []Rule{{Query: "*", Queue: "a"}}
	r := mustRouter(t, rules, nil)
	rules[0].Queue = "changed"
	got := r.Rules()
	got[0].Queue = "also changed"
	require.Equal(t, []Rule{{Query: "*", Queue: "a"}}, r.Rules())
	require.Equal(t, "a", r.Route(Worker{WorkerName: "AWorker"}))
}

// The cache is keyed by Worker.ID(), but a changed attribute must never
// return the stale route.
func TestRouteCacheSeesChangedAttributes(t *testing.T) {
	for _, opts := range []*Options{nil, {CacheSize: 1}, {CacheSize: -1}} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			r := mustRouter(t, []Rule{
				{Query: "tags=search", Queue: "tagged"},
				{Query: "urgency=throttled", Queue: "throttled"},
				{Query: "has_external_dependencies=true", Queue: "external"},
				{Query: "name=old_queue", Queue: "by-name"},
			}, opts)
			w := Worker{WorkerName: "SomeWorker", Tags: []string{"other"}}
			require.Equal(t, "some", r.Route(w))
			require.Equal(t, "some", r.Route(w))

			// Mutating the caller's tag slice in place is seen.
			w.Tags[0] = "search"
			require.Equal(t, "tagged", r.Route(w))
			w.Tags = nil
			require.Equal(t, "some", r.Route(w))

			w.Urgency = "throttled"
			require.Equal(t, "throttled", r.Route(w))
			w.Urgency = ""
			w.HasExternalDependencies = true
			require.Equal(t, "external", r.Route(w))
			w.HasExternalDependencies = false
			w.QueueName = "old_queue"
			require.Equal(t, "by-name", r.Route(w))
			w.QueueName = ""
			w.QueueNamespace = "cronjob"
			require.Equal(t, "cronjob:some", r.Route(w))

			// Attributes that do not route are not part of the check, and do not matter.
			w.Weight, w.Idempotent, w.LimitedCapacity = 9, true, true
			require.Equal(t, "cronjob:some", r.Route(w))
		})
	}
}

func TestRouteCacheLimit(t *testing.T) {
	r := mustRouter(t, []Rule{{Query: "*"}}, &Options{CacheSize: 8})
	for i := range 100 {
		w := Worker{WorkerName: fmt.Sprintf("W%dWorker", i)}
		require.Equal(t, fmt.Sprintf("w%d", i), r.Route(w))
		require.Equal(t, fmt.Sprintf("w%d", i), r.Route(w))
	}
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	require.LessOrEqual(t, len(r.cache.dirty), 8)
	require.LessOrEqual(t, len(r.cache.read.Load().byID), 8)
}

func TestRouteCachedDoesNotAllocate(t *testing.T) {
	workers := readTestWorkers(t)
	r := mustRouter(t, []Rule{
		{Query: "feature_category=global_search&urgency=throttled", Queue: "elasticsearch"},
		{Query: "tags=exclude_from_kubernetes"},
		{Query: "*"},
	}, nil)
	// Warm the cache until every worker is published to the read map.
	for range 4 {
		for _, w := range workers {
			r.Route(w)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, w := range workers {
			r.Route(w)
		}
	})
	require.Zero(t, allocs)
}

func TestRouteConcurrent(t *testing.T) {
	workers := readTestWorkers(t)
	rules, err := ParseRules([]byte(`[["feature_category=global_search&urgency=throttled", "elasticsearch"], ["*", null]]`))
	require.NoError(t, err)
	r := mustRouter(t, rules, &Options{CacheSize: 5})
	uncached := mustRouter(t, rules, &Options{CacheSize: -1})

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				w := workers[(i+g)%len(workers)]
				if got, want := r.Route(w), uncached.Route(w); got != want {
					errs <- fmt.Errorf("%s: got %s, want %s", w.ID(), got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The fast path finds entries by the address of the ID's bytes; equal IDs at
// other addresses must still hit, and a different ID sharing the address
// (a prefix of the same bytes) must not.
func TestRouteCacheKeyIsContentNotAddress(t *testing.T) {
	r := mustRouter(t, []Rule{{Query: "worker_name=FooWorker", Queue: "foo-queue"}}, nil)
	long := "FooWorkerX"
	short := long[:9] // "FooWorker", sharing long's bytes
	for range 3 {
		require.Equal(t, "foo-queue", r.Route(Worker{WorkerName: short}))
		require.Equal(t, "foo_worker_x", r.Route(Worker{WorkerName: long}))
		require.Equal(t, "foo-queue", r.Route(Worker{WorkerName: strings.Clone(short)}))
	}
	copied := Worker{WorkerName: strings.Clone(short)}
	require.Zero(t, testing.AllocsPerRun(10, func() { r.Route(copied) }))
}
