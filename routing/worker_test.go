package routing

import (
	"errors"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGeneratedQueueName(t *testing.T) {
	tests := []struct {
		class, namespace, queue, want string
	}{
		// gitlab-semantics.md §7.
		{"PagesWorker", "", "", "pages"},
		{"PostReceive", "git", "", "git:post_receive"},
		{"Gitlab::JiraImport::AdvanceStageWorker", "", "", "jira_import_advance_stage"},
		{"Gitlab::PhabricatorImport::ImportTasksWorker", "importer", "", "importer:phabricator_import_import_tasks"},
		{"X509IssuerCrlCheckWorker", "cronjob", "", "cronjob:x509_issuer_crl_check"},
		{"Observability::CreateGroupO11ySettingWorker", "", "", "observability_create_group_o11y_setting"},
		{"GitlabPerformanceBarStatsWorker", "cronjob", "", "cronjob:gitlab_performance_bar_stats"},
		// More of ActiveSupport's underscore.
		{"ElasticCommitIndexerWorker", "", "", "elastic_commit_indexer"},
		{"Elastic::MigrationWorker", "cronjob", "", "cronjob:elastic_migration"},
		{"HTMLParserWorker", "", "", "html_parser"},
		{"ABCDefWorker", "", "", "abc_def"},
		{"S3UploadWorker", "", "", "s3_upload"},
		{"Pipeline2Worker", "", "", "pipeline2"},
		{"A1BWorker", "", "", "a1_b"},
		{"ImportJob", "", "", "import_job"},             // only "Worker" is removed
		{"WorkerPoolWorker", "", "", "worker_pool"},     // only a trailing "Worker"
		{"Gitlab::Gitlab::XWorker", "", "", "gitlab_x"}, // "Gitlab::" once
		{"lowercase", "", "", "lowercase"},
		{"Gitlab::Worker", "", "fallback", ""}, // nothing left, as in GitLab
		{"Gitlab::Worker", "ns", "", "ns:"},
		{"", "cronjob", "cronjob:legacy", "cronjob:legacy"}, // no class: the recorded queue
	}
	for _, tt := range tests {
		t.Run(tt.class+"/"+tt.namespace, func(t *testing.T) {
			w := Worker{WorkerName: tt.class, QueueNamespace: tt.namespace, QueueName: tt.queue}
			require.Equal(t, tt.want, GeneratedQueueName(w))
		})
	}
	// A nil namespace is no namespace.
	require.Equal(t, "pages", GeneratedQueueName(Worker{WorkerName: "PagesWorker", QueueNamespace: "x", Nil: AttrQueueNamespace}))
}

// underscore matches ActiveSupport's definition, written with its regular
// expressions, on generated class-like names.
func TestUnderscoreMatchesRegexpDefinition(t *testing.T) {
	reference := func(s string) string {
		if !regexp.MustCompile(`[A-Z-]|::`).MatchString(s) {
			return s
		}
		s = strings.ReplaceAll(s, "::", "/")
		// (?<=[A-Z])(?=[A-Z][a-z]) | (?<=[a-z\d])(?=[A-Z]), positions found on
		// the original string.
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if i > 0 {
				prev, cur := s[i-1:i], s[i:]
				if regexp.MustCompile(`^[A-Z]$`).MatchString(prev) && regexp.MustCompile(`^[A-Z][a-z]`).MatchString(cur) ||
					regexp.MustCompile(`^[a-z\d]$`).MatchString(prev) && regexp.MustCompile(`^[A-Z]`).MatchString(cur) {
					b.WriteByte('_')
				}
			}
			b.WriteByte(s[i])
		}
		return strings.ToLower(strings.ReplaceAll(b.String(), "-", "_"))
	}
	alphabet := "AaBb09_:-Zz"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		n := 1 + rng.IntN(10)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		require.Equal(t, reference(s), underscore(s), "%q", s)
	}
}

func TestDummyWorkers(t *testing.T) {
	d := DummyWorkers()
	require.Len(t, d, 2)
	require.True(t, d[0].IsDummy())
	require.True(t, d[1].IsDummy())
	require.Equal(t, "default", d[0].ID())
	require.Equal(t, "ActionMailer::MailDeliveryJob", d[1].ID())
	require.False(t, Worker{WorkerName: "DefaultWorker", QueueName: "default"}.IsDummy())
	require.False(t, Worker{WorkerName: "ActionMailer::MailDeliveryJob", QueueName: "mailers2"}.IsDummy())
	require.False(t, Worker{QueueName: "mailers"}.IsDummy())
}

func TestWorkerID(t *testing.T) {
	require.Equal(t, "FooWorker", Worker{WorkerName: "FooWorker", QueueName: "foo"}.ID())
	require.Equal(t, "foo", Worker{QueueName: "foo"}.ID())
}

func readTestWorkers(t testing.TB) []Worker {
	t.Helper()
	var lists [][]Worker
	for _, name := range []string{"testdata/all_queues.yml", "testdata/ee_all_queues.yml"} {
		f, err := os.Open(name)
		require.NoError(t, err)
		ws, err := ReadWorkers(f)
		require.NoError(t, f.Close())
		require.NoError(t, err, name)
		lists = append(lists, ws)
	}
	all, err := MergeWorkers(lists...)
	require.NoError(t, err)
	return all
}

func TestReadWorkersSamples(t *testing.T) {
	workers := readTestWorkers(t)
	require.Len(t, workers, 17)

	byID := make(map[string]Worker)
	for _, w := range workers {
		byID[w.ID()] = w
		// The samples keep every worker on its generated queue.
		require.Equal(t, w.QueueName, GeneratedQueueName(w), w.ID())
	}
	// Ruby-symbol style: leading colons removed from keys and symbol values.
	require.Equal(t, Worker{
		WorkerName:              "RepositoryImportWorker",
		QueueName:               "repository_import",
		FeatureCategory:         "importers",
		Urgency:                 "low",
		ResourceBoundary:        "unknown",
		HasExternalDependencies: true,
		Tags:                    []string{"exclude_from_kubernetes"},
		Weight:                  1,
	}, byID["RepositoryImportWorker"])
	require.Equal(t, "github_importer", byID["Gitlab::GithubImport::ImportIssueWorker"].QueueNamespace)
	// Plain style with the rollout flags; "tags: []" reads as nil.
	require.Equal(t, Worker{
		WorkerName:       "ElasticIndexBulkCronWorker",
		QueueName:        "cronjob:elastic_index_bulk_cron",
		FeatureCategory:  "global_search",
		Urgency:          "throttled",
		ResourceBoundary: "unknown",
		QueueNamespace:   "cronjob",
		Weight:           1,
		Idempotent:       true,
		LimitedCapacity:  true,
	}, byID["ElasticIndexBulkCronWorker"])
	require.True(t, byID["ElasticDeleteProjectWorker"].DependsOnQueueName)
}

func TestReadWorkersForms(t *testing.T) {
	t.Run("multiple documents and empty ones", func(t *testing.T) {
		ws, err := ReadWorkers(strings.NewReader("- name: a\n---\n---\n- name: b\n  worker_name: BWorker\n"))
		require.NoError(t, err)
		require.Equal(t, []Worker{{QueueName: "a"}, {QueueName: "b", WorkerName: "BWorker"}}, ws)
	})
	t.Run("empty input", func(t *testing.T) {
		ws, err := ReadWorkers(strings.NewReader(""))
		require.NoError(t, err)
		require.Empty(t, ws)
	})
	t.Run("null values read as zero", func(t *testing.T) {
		ws, err := ReadWorkers(strings.NewReader("- name: a\n  urgency: null\n  weight: ~\n  tags:\n  idempotent:\n"))
		require.NoError(t, err)
		require.Equal(t, []Worker{{QueueName: "a", Nil: AttrUrgency}}, ws)
	})
	t.Run("unknown keys ignored", func(t *testing.T) {
		ws, err := ReadWorkers(strings.NewReader("- name: a\n  colour: [1, 2]\n  :shape: {x: 1}\n"))
		require.NoError(t, err)
		require.Equal(t, []Worker{{QueueName: "a"}}, ws)
	})
	t.Run("flow style and anchors", func(t *testing.T) {
		ws, err := ReadWorkers(strings.NewReader("- {name: a, tags: &t [x, y]}\n- {name: b, tags: *t}\n"))
		require.NoError(t, err)
		require.Equal(t, []Worker{{QueueName: "a", Tags: []string{"x", "y"}}, {QueueName: "b", Tags: []string{"x", "y"}}}, ws)
	})
}

func TestReadWorkersErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		index int
		key   string
		msg   string
	}{
		{"missing name", "- name: a\n- worker_name: BWorker\n", 1, "name", "missing"},
		{"null name", "- name: ~\n", 0, "name", "want a string (a queue name), got null"},
		{"empty name", "- name: ''\n", 0, "name", `invalid queue name ""`},
		{"name with space", "- name: a b\n", 0, "name", `invalid queue name "a b"`},
		{"name not a string", "- name: 12\n", 0, "name", "want a string (a queue name), got the integer 12"},
		{"symbol name key", "- :name: [a]\n", 0, "name", "got a list"},
		{"symbol name", "- :name: :a\n", 0, "name", "got the symbol :a"},
		{"worker_name malformed", "- name: a\n  worker_name: foo bar\n", 0, "worker_name", "invalid class name"},
		{"worker_name empty segment", "- name: a\n  worker_name: Foo::::Bar\n", 0, "worker_name", "invalid class name"},
		{"feature_category wrong type", "- name: a\n  feature_category: {x: 1}\n", 0, "feature_category", "want a symbol (:value), a string or null, got a mapping"},
		{"urgency wrong type", "- name: a\n  urgency: true\n", 0, "urgency", "got true"},
		{"urgency a list in GitLab's form", "- :name: a\n  :urgency: [x]\n", 0, "urgency", "got a list"},
		{"urgency false in GitLab's form", "- :name: a\n  :urgency: false\n", 0, "urgency", "got false"},
		{"resource_boundary wrong type", "- name: a\n  resource_boundary: 1.5\n", 0, "resource_boundary", "got the float 1.5"},
		{"queue_namespace with colon", "- name: a\n  queue_namespace: a:b\n", 0, "queue_namespace", "invalid queue namespace"},
		{"has_external_dependencies wrong type", "- name: a\n  has_external_dependencies: 'yes'\n", 0, "has_external_dependencies", `want true, false or null, got the string "yes"`},
		{"idempotent wrong type", "- name: a\n  idempotent: 1\n", 0, "idempotent", "want true, false or null"},
		{"depends_on_queue_name wrong type", "- name: a\n  depends_on_queue_name: []\n", 0, "depends_on_queue_name", "want true, false or null"},
		{"limited_capacity wrong type", "- name: a\n  limited_capacity: x\n", 0, "limited_capacity", "want true, false or null"},
		{"weight wrong type", "- name: a\n  weight: heavy\n", 0, "weight", `want an integer, got the string "heavy"`},
		{"weight negative", "- name: a\n  weight: -1\n", 0, "weight", "non-negative"},
		{"weight float", "- name: a\n  weight: 1.5\n", 0, "weight", "want an integer"},
		{"tags a mapping", "- name: a\n  tags: {a: b}\n", 0, "tags", "item 0: want a symbol"},
		{"tag not a string", "- name: a\n  tags: [x, 3]\n", 0, "tags", "item 1: want a symbol such as :cronjob_child, got the integer 3"},
		{"tags mixed in GitLab's form", "- :name: a\n  :tags:\n  - :x\n  - y\n", 0, "tags", "mixes Symbols"},
		{"tag null in GitLab's form", "- :name: a\n  :tags:\n  - :x\n  - ~\n", 0, "tags", "item 1"},
		{"key twice", "- name: a\n  urgency: low\n  :urgency: high\n", 0, "urgency", "given twice"},
		{"merge key", "- name: a\n  <<: {urgency: low}\n", 0, "<<", "merge keys"},
		{"entry not a mapping", "- name: a\n- just-a-string\n", 1, "", "want a mapping of worker attributes"},
		{"index counts across documents", "- name: a\n---\n- name: b\n- weight: x\n", 2, "weight", "want an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := ReadWorkers(strings.NewReader(tt.input))
			require.Error(t, err)
			require.Nil(t, ws)
			require.True(t, errors.Is(err, ErrInvalidWorker), "%v", err)
			var ee *EntryError
			require.True(t, errors.As(err, &ee), "%v", err)
			require.Equal(t, tt.index, ee.Index, "%v", err)
			require.Equal(t, tt.key, ee.Key, "%v", err)
			require.Contains(t, ee.Msg, tt.msg)
			require.Positive(t, ee.Line)
			require.Contains(t, err.Error(), "entry")
			if tt.key != "" {
				require.Contains(t, err.Error(), `key "`+tt.key+`"`)
			}
		})
	}

	t.Run("error names the entry", func(t *testing.T) {
		_, err := ReadWorkers(strings.NewReader("- weight: x\n  name: cronjob:foo\n"))
		require.EqualError(t, err, `routing: all_queues entry 0 (name "cronjob:foo", line 1): key "weight": want an integer, got the string "x"`)
	})
	t.Run("not a list", func(t *testing.T) {
		_, err := ReadWorkers(strings.NewReader("name: a\n"))
		require.ErrorIs(t, err, ErrInvalidWorker)
		require.ErrorContains(t, err, "line 1: want a list of worker entries, got a mapping")
	})
	t.Run("YAML syntax", func(t *testing.T) {
		_, err := ReadWorkers(strings.NewReader("- name: [a\n"))
		require.ErrorIs(t, err, ErrInvalidWorker)
		require.ErrorContains(t, err, "line")
	})
	t.Run("duplicate worker", func(t *testing.T) {
		_, err := ReadWorkers(strings.NewReader("- name: a\n  worker_name: AWorker\n- name: b\n  worker_name: AWorker\n"))
		require.ErrorIs(t, err, ErrDuplicateWorker)
		require.ErrorContains(t, err, `"AWorker": all_queues entries 0 and 1`)
	})
}

func TestMergeWorkers(t *testing.T) {
	a := []Worker{{WorkerName: "AWorker", QueueName: "a"}}
	b := []Worker{{WorkerName: "BWorker", QueueName: "b"}, {QueueName: "c"}}
	all, err := MergeWorkers(a, nil, b)
	require.NoError(t, err)
	require.Equal(t, []Worker{a[0], b[0], b[1]}, all)

	_, err = MergeWorkers(a, b, []Worker{{QueueName: "x"}, {WorkerName: "BWorker", QueueName: "b2"}})
	require.ErrorIs(t, err, ErrDuplicateWorker)
	require.ErrorContains(t, err, `"BWorker": list 1 index 0 and list 2 index 1`)
}
