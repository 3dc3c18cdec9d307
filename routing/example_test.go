package routing_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ferryhq/ferry/routing"
)

func ExampleParse() {
	sel, err := routing.Parse("feature_category=global_search&urgency=throttled")
	if err != nil {
		fmt.Println(err)
		return
	}
	indexer := routing.Worker{WorkerName: "ElasticCommitIndexerWorker", FeatureCategory: "global_search", Urgency: "throttled"}
	control := routing.Worker{WorkerName: "ElasticIndexingControlWorker", FeatureCategory: "global_search", Urgency: "low"}
	fmt.Println(sel.Match(indexer), sel.Match(control))

	// GitLab's reading of odd selectors, which Parse reproduces.
	for _, q := range []string{"urgency=high ", "feature_category=add-on_provisioning", "urgency=high|", "|urgency=high", ""} {
		sel, _ := routing.Parse(q)
		fmt.Printf("%q reads as %q\n", q, sel)
	}
	_, err = routing.Parse("urgency=high & tags=search")
	var se *routing.SyntaxError
	if errors.As(err, &se) {
		fmt.Println(se.Kind, se.Offset)
	}
	// Output:
	// true false
	// "urgency=high " reads as "urgency=high"
	// "feature_category=add-on_provisioning" reads as "feature_category=add"
	// "urgency=high|" reads as "urgency=high"
	// "|urgency=high" reads as "*"
	// "" reads as ""
	// invalid-term 14
}

func ExampleLint() {
	for _, f := range routing.Lint(`urgency=throttled"|`, nil) {
		fmt.Println(f)
	}
	// Output:
	// selector "urgency=throttled\"|": offset 18: empty-alternative: empty alternative after the last |; GitLab ignores it
	// selector "urgency=throttled\"|": offset 17: trailing-text: quote after the value list ("\""); the selector language has no quotes; GitLab ignores it and reads "urgency=throttled"
}

func ExampleParseStrict() {
	_, err := routing.ParseStrict("urgency=:high", nil)
	fmt.Println(errors.Is(err, routing.ErrStrict))
	fmt.Println(err)
	// Output:
	// true
	// routing: selector "urgency=:high": offset 8: colon-value (strict mode): value ":high" starts with a colon (GitLab compares it with the Symbol :":high", which no worker has; write high)
}

func ExampleLintRules() {
	workers := []routing.Worker{
		{WorkerName: "ElasticCommitIndexerWorker", QueueName: "elastic_commit_indexer", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "PostReceive", QueueName: "post_receive", FeatureCategory: "source_code_management", Urgency: "high"},
	}
	rules := []byte(`
- [feature_category=global_search, elasticsearch]
- [urgency=throttled, throttled]
- [feature_category=global_serach, typo]
- ['*', false]
`)
	for _, f := range routing.LintRules(rules, workers) {
		fmt.Println(f)
	}
	// Output:
	// rule 1 (line 3): unreachable: every worker it matches (1) is routed by an earlier rule; GitLab routes no worker by it
	// rule 2 (line 4): selector "feature_category=global_serach": offset 17: unknown-value: no worker has feature_category "global_serach"; GitLab matches no worker by this value of feature_category=
	// rule 2 (line 4): matches-nothing: matches none of the 2 workers; GitLab routes no worker by it
	// rule 3 (line 5): queue-not-string: queue is false; GitLab treats it as null: the generated queue name; write null
}

func ExampleSelectQueues() {
	workers := append(routing.DummyWorkers(),
		routing.Worker{WorkerName: "PostReceive", QueueName: "post_receive", Urgency: "high"},
		routing.Worker{WorkerName: "ElasticCommitIndexerWorker", QueueName: "elastic_commit_indexer", Urgency: "throttled"},
	)
	// sidekiq-cluster --queue-selector 'urgency=high|urgency=low' [--negate]
	queues, _ := routing.SelectQueues(workers, "urgency=high|urgency=low", false)
	fmt.Println(queues)
	negated, _ := routing.SelectQueues(workers, "urgency=high|urgency=low", true)
	fmt.Println(negated)
	// Output:
	// [post_receive]
	// [default mailers elastic_commit_indexer]
}

func ExampleRouter_Route() {
	rules, err := routing.ParseRules([]byte(`[
		["feature_category=global_search&urgency=throttled", "elasticsearch"],
		["queue_namespace=cronjob", null]
	]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := routing.NewRouter(rules, &routing.Options{DefaultQueue: "default"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range []routing.Worker{
		{WorkerName: "Elastic::MigrationWorker", QueueNamespace: "cronjob", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "ContainerExpirationPolicyWorker", QueueNamespace: "cronjob"},
		{WorkerName: "PostReceive"},
	} {
		fmt.Printf("%s -> %s\n", w.WorkerName, r.Route(w))
	}
	// Output:
	// Elastic::MigrationWorker -> elasticsearch
	// ContainerExpirationPolicyWorker -> cronjob:container_expiration_policy
	// PostReceive -> default
}

func ExampleGeneratedQueueName() {
	fmt.Println(routing.GeneratedQueueName(routing.Worker{
		WorkerName:     "Gitlab::GithubImport::ImportIssueWorker",
		QueueNamespace: "github_importer",
	}))
	// Output: github_importer:github_import_import_issue
}

func ExampleReadWorkers() {
	const allQueues = `
- :name: cronjob:elastic_migration
  :worker_name: Elastic::MigrationWorker
  :feature_category: :global_search
  :urgency: :throttled
  :queue_namespace: :cronjob
  :weight: 1
  :tags: []
- name: elastic_commit_indexer
  worker_name: ElasticCommitIndexerWorker
  feature_category: global_search
  urgency: throttled
`
	workers, err := routing.ReadWorkers(strings.NewReader(allQueues))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range workers {
		fmt.Println(w.WorkerName, w.QueueName, w.FeatureCategory, w.Urgency)
	}

	_, err = routing.ReadWorkers(strings.NewReader("- name: elastic_commit_indexer\n  weight: heavy\n"))
	fmt.Println(err)
	// Output:
	// Elastic::MigrationWorker cronjob:elastic_migration global_search throttled
	// ElasticCommitIndexerWorker elastic_commit_indexer global_search throttled
	// routing: all_queues entry 0 (name "elastic_commit_indexer", line 2): key "weight": want an integer, got the string "heavy"
}

func ExampleDiff() {
	workers := []routing.Worker{
		{WorkerName: "ElasticDeleteProjectWorker", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "PostReceive", Urgency: "high"},
	}
	// These fixed rules and distinct workers cannot fail; real code checks the errors.
	before, _ := routing.NewRouter(nil, nil)
	after, _ := routing.NewRouter([]routing.Rule{{Query: "feature_category=global_search", Queue: "elasticsearch"}}, nil)
	oldTable, _ := before.Table(workers)
	newTable, _ := after.Table(workers)
	for _, c := range routing.Diff(oldTable, newTable) {
		fmt.Println(c)
	}
	fmt.Print(newTable)
	// Output:
	// ElasticDeleteProjectWorker: elastic_delete_project -> elasticsearch
	// elasticsearch (1 worker)
	//   ElasticDeleteProjectWorker
	// post_receive (1 worker)
	//   PostReceive
}

func ExamplePlan() {
	workers := []routing.Worker{
		{WorkerName: "ElasticCommitIndexerWorker", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "ElasticDeleteProjectWorker", FeatureCategory: "global_search", Urgency: "throttled", DependsOnQueueName: true},
		{WorkerName: "PostReceive", Urgency: "high"},
	}
	// Before: one queue per worker. After: the search workers share one queue.
	before, err := routing.NewRouter([]routing.Rule{{Query: "*"}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	after, err := routing.NewRouter([]routing.Rule{
		{Query: "feature_category=global_search&urgency=throttled", Queue: "elasticsearch"},
		{Query: "*"},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := routing.Plan(before, after, workers)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = plan.WriteTo(os.Stdout)
	// Output:
	// Warnings (resolve before step 2):
	//   ! ElasticDeleteProjectWorker (elastic_delete_project -> elasticsearch) depends on its own queue name: stop using the queue name (keys, queue size) or document the new semantics before switching clients
	// 1. Servers: listen to old and new queues (deploy before any client switches)
	//    group elasticsearch: elasticsearch elastic_commit_indexer elastic_delete_project
	//    group post_receive: post_receive
	//    new queues (no server listens yet): elasticsearch
	//    $ sidekiq-cluster --dryrun elasticsearch,elastic_commit_indexer,elastic_delete_project post_receive
	// 2. Clients: switch to the new routing rules
	//    ElasticCommitIndexerWorker: elastic_commit_indexer -> elasticsearch
	//    ElasticDeleteProjectWorker: elastic_delete_project -> elasticsearch
	// 3. Drain or migrate jobs left in old queues
	//    elastic_commit_indexer: wait until empty or move its jobs to elasticsearch (ElasticCommitIndexerWorker)
	//    elastic_delete_project: wait until empty or move its jobs to elasticsearch (ElasticDeleteProjectWorker)
	//    jobs already scheduled or waiting for a retry name an old queue: move them too (sidekiqmove moves queued, scheduled and retry jobs)
	// 4. Servers: stop listening to queues nothing routes to
	//    stop: elastic_commit_indexer elastic_delete_project
	//    $ sidekiq-cluster --dryrun elasticsearch post_receive
}
