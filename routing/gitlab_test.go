package routing

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func readWorkerFiles(t testing.TB, paths ...string) []Worker {
	t.Helper()
	var lists [][]Worker
	for _, p := range paths {
		f, err := os.Open(p)
		require.NoError(t, err)
		ws, err := ReadWorkers(f)
		require.NoError(t, f.Close())
		require.NoError(t, err, p)
		lists = append(lists, ws)
	}
	all, err := MergeWorkers(lists...)
	require.NoError(t, err)
	return all
}

// gitlabWorkers are GitLab's real metadata (testdata/gitlab/README.md).
func gitlabWorkers(t testing.TB) []Worker {
	return readWorkerFiles(t, "testdata/gitlab/all_queues.yml", "testdata/gitlab/ee_all_queues_subset.yml")
}

// checkGitLabMetadata holds for GitLab's files of any version.
func checkGitLabMetadata(t *testing.T, workers []Worker) {
	t.Helper()
	var dummies []Worker
	for _, w := range workers {
		if w.IsDummy() {
			dummies = append(dummies, w)
			continue
		}
		// Every real worker's recorded name is its generated queue name.
		require.Equal(t, w.QueueName, GeneratedQueueName(w), w.WorkerName)
		require.NotEmpty(t, w.WorkerName)
		require.Zero(t, w.Strings, "%s: only the mailers entry has a String value", w.WorkerName)
		require.False(t, w.Nil.Has(AttrHasExternalDependencies), w.WorkerName)
	}
	require.Equal(t, DummyWorkers(), normalizeTags(dummies))

	// Routing leaves the dummies where they are, whatever the rules say.
	r := mustRouter(t, []Rule{{Query: "feature_category=not_owned", Queue: "not_owned"}, {Query: "*", Queue: "default"}}, nil)
	tab, err := r.Table(workers)
	require.NoError(t, err)
	q, _ := tab.QueueOf("ActionMailer::MailDeliveryJob")
	require.Equal(t, "mailers", q)
	q, _ = tab.QueueOf("default")
	require.Equal(t, "default", q)

	// Symbol vs String and nil, over the whole list: every entry is on
	// exactly one side of each term and its negation.
	for _, query := range []string{"urgency=low", "has_external_dependencies=true", "has_external_dependencies=false", "queue_namespace=cronjob", "tags=cronjob_child"} {
		sel, err := Parse(query)
		require.NoError(t, err)
		neg, err := Parse(query[:len(attrOf(query))] + "!" + query[len(attrOf(query)):])
		require.NoError(t, err)
		for _, w := range workers {
			require.NotEqual(t, sel.Match(w), neg.Match(w), "%s on %s", query, w.ID())
		}
	}
	low, _ := Parse("urgency=low")
	require.False(t, low.Match(dummies[1]), "mailers' urgency is a String")
	ext, _ := Parse("has_external_dependencies=true|has_external_dependencies=false")
	require.False(t, ext.Match(dummies[0]), "default's has_external_dependencies is nil")
	require.False(t, ext.Match(dummies[1]), "mailers' has_external_dependencies is nil")
}

func attrOf(query string) string {
	for i := range query {
		if query[i] == '=' {
			return query[:i]
		}
	}
	return query
}

// normalizeTags makes empty tag lists nil, as DummyWorkers has them.
func normalizeTags(ws []Worker) []Worker {
	out := slices.Clone(ws)
	for i := range out {
		if len(out[i].Tags) == 0 {
			out[i].Tags = nil
		}
	}
	return out
}

func TestGitLabMetadata(t *testing.T) {
	workers := gitlabWorkers(t)
	require.Len(t, workers, 574+42)
	checkGitLabMetadata(t, workers)

	// The seed's shard rule selects GitLab's search workers (the EE subset
	// holds every global_search worker with urgency throttled).
	queues, err := SelectQueues(workers, "feature_category=global_search&urgency=throttled", false)
	require.NoError(t, err)
	require.Len(t, queues, 16)
	require.Contains(t, queues, "search_elastic_commit_indexer")
	require.Contains(t, queues, "cronjob:search_elastic_migration_cleanup_cron")

	// feature_category=add-on_provisioning reads as "add": nothing.
	none, err := SelectQueues(workers, "feature_category=add-on_provisioning", false)
	require.NoError(t, err)
	require.Empty(t, none)
	got := Lint("feature_category=add-on_provisioning", workers)
	require.Equal(t, []Problem{TrailingText, UnknownValue, MatchesNothing}, kindsOf(got))

	// Every entry on one side of a selector and its negation, dummies included.
	sel, err := SelectQueues(workers, "resource_boundary=cpu&urgency!=throttled", false)
	require.NoError(t, err)
	neg, err := SelectQueues(workers, "resource_boundary=cpu&urgency!=throttled", true)
	require.NoError(t, err)
	require.Len(t, append(sel, neg...), len(workers))
	require.Contains(t, neg, "default")
	require.Contains(t, neg, "mailers")
}

// TestGitLabCheckout runs the same checks on the complete all_queues.yml
// files of a GitLab checkout named by FERRY_GITLAB_DIR.
func TestGitLabCheckout(t *testing.T) {
	dir := os.Getenv("FERRY_GITLAB_DIR")
	if dir == "" {
		t.Skip("set FERRY_GITLAB_DIR to a GitLab checkout to check its complete worker metadata")
	}
	paths := []string{filepath.Join(dir, "app/workers/all_queues.yml")}
	if ee := filepath.Join(dir, "ee/app/workers/all_queues.yml"); fileExists(ee) {
		paths = append(paths, ee)
	}
	workers := readWorkerFiles(t, paths...)
	t.Logf("%d entries from %v", len(workers), paths)
	checkGitLabMetadata(t, workers)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
