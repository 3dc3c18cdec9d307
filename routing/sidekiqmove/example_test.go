package sidekiqmove_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/routing"
	"github.com/ferryhq/ferry/routing/sidekiqmove"
)

func ExampleMovesFromChanges() {
	workers := []routing.Worker{
		{WorkerName: "ElasticCommitIndexerWorker", QueueName: "elastic_commit_indexer", FeatureCategory: "global_search", Urgency: "throttled"},
		{WorkerName: "PostReceive", QueueName: "post_receive", Urgency: "high"},
	}
	before, _ := routing.NewRouter(nil, nil) // fixed rules: no error to check
	after, _ := routing.NewRouter([]routing.Rule{{Query: "feature_category=global_search&urgency=throttled", Queue: "elasticsearch"}}, nil)
	plan, err := routing.Plan(before, after, workers)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range sidekiqmove.MovesFromChanges(plan.Changes) {
		fmt.Println(m)
	}
	// Output:
	// ElasticCommitIndexerWorker: elastic_commit_indexer -> elasticsearch
}

// Move the jobs of every worker whose queue changed, first as a dry run.
func ExampleMover_Run() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer client.Close()
	moves := []sidekiqmove.Move{{Worker: "ElasticCommitIndexerWorker", From: "elastic_commit_indexer", To: "elasticsearch"}}

	for _, dryRun := range []bool{true, false} {
		m, err := sidekiqmove.New(client, moves, &sidekiqmove.Options{DryRun: dryRun, Rate: 2000})
		if err != nil {
			log.Fatal(err)
		}
		report, err := m.Run(ctx)
		if err != nil {
			log.Fatal(err) // every job is still in exactly one place: run again
		}
		_, _ = report.WriteTo(os.Stdout)
	}
}
