package routing

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchWorkers builds n distinct workers spread over a few attribute values,
// in the shape of a large all_queues.yml.
func benchWorkers(n int) []Worker {
	categories := []string{"global_search", "source_code_management", "team_planning", "importers", "container_registry", "geo_replication", "pipeline_processing"}
	urgencies := []string{"high", "low", "throttled"}
	boundaries := []string{"cpu", "memory", "unknown"}
	namespaces := []string{"", "", "", "cronjob", "github_importer", "geo"}
	workers := make([]Worker, n)
	for i := range workers {
		w := Worker{
			WorkerName:              fmt.Sprintf("Bench::Feature%dSync%dWorker", i%37, i),
			FeatureCategory:         categories[i%len(categories)],
			Urgency:                 urgencies[i%len(urgencies)],
			ResourceBoundary:        boundaries[(i/3)%len(boundaries)],
			HasExternalDependencies: i%5 == 0,
			QueueNamespace:          namespaces[i%len(namespaces)],
			Weight:                  1 + i%3,
		}
		if i%4 == 0 {
			w.Tags = []string{"exclude_from_kubernetes"}
		}
		w.QueueName = GeneratedQueueName(w)
		workers[i] = w
	}
	return workers
}

// benchRules is a 20-rule set in the style of a real deployment: specific
// shards first, a catch-all last.
const benchRules = `[
	["feature_category=global_search&urgency=throttled", "elasticsearch"],
	["feature_category=global_search", null],
	["queue_namespace=cronjob&urgency=low", "cronjob"],
	["queue_namespace=github_importer", "github_importer"],
	["queue_namespace=geo&has_external_dependencies=true", "geo"],
	["tags=exclude_from_kubernetes&resource_boundary=memory", null],
	["resource_boundary=memory&urgency=throttled", "memory-bound"],
	["resource_boundary=cpu&urgency=high", "urgent-cpu-bound"],
	["urgency=high&resource_boundary!=cpu", "urgent-other"],
	["feature_category=container_registry&urgency=low", "registry"],
	["feature_category=pipeline_processing&urgency=high", "pipelines"],
	["feature_category=pipeline_processing", "pipelines-low"],
	["feature_category=importers&has_external_dependencies=true", "imports"],
	["feature_category=importers", null],
	["feature_category=team_planning&urgency!=high", "planning"],
	["feature_category=source_code_management&urgency=low", "scm"],
	["worker_name=Bench::Feature1Sync1Worker,Bench::Feature2Sync2Worker", "special"],
	["has_external_dependencies=true&urgency=throttled", "external"],
	["urgency=throttled", "throttled"],
	["*", "default"]
]`

func benchRouter(b *testing.B, opts *Options) *Router {
	b.Helper()
	rules, err := ParseRules([]byte(benchRules))
	if err != nil {
		b.Fatal(err)
	}
	if len(rules) != 20 {
		b.Fatalf("want 20 rules, got %d", len(rules))
	}
	r, err := NewRouter(rules, opts)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

var sinkQueue string

// BenchmarkRoute compares Router.Route on a warm cache with the baseline the
// issue names: a plain map lookup in the precomputed table (worker ID →
// queue), in the same run. ns/op is Route's; the ratio comes from
// interleaved rounds of both (see compareInterleaved). Target: ratio ≤ 2.
func BenchmarkRoute(b *testing.B) {
	workers := benchWorkers(1000)
	r := benchRouter(b, nil)
	table, err := r.Table(workers)
	if err != nil {
		b.Fatal(err)
	}
	precomputed := table.Map()
	for range 4 { // publish every worker to the cache's read snapshot
		for _, w := range workers {
			r.Route(w)
		}
	}

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkQueue = r.Route(workers[i%len(workers)])
		i++
	}

	ferry, baseline := compareInterleaved(7, 100_000,
		func(n int) {
			for j := range n {
				sinkQueue = r.Route(workers[j%len(workers)])
			}
		},
		func(n int) {
			for j := range n {
				sinkQueue = precomputed[workers[j%len(workers)].ID()]
			}
		})
	reportRatio(b, "route-cached-vs-map", ferry, baseline, 2)
}

// compareInterleaved times ferry and baseline (each running n operations) in
// alternating rounds and returns the fastest round of each in ns/op. On a
// shared machine other processes slow down whole stretches of time; taking
// the minimum of interleaved rounds keeps that noise out of the ratio.
func compareInterleaved(rounds, n int, ferry, baseline func(n int)) (ferryNs, baselineNs float64) {
	ferryNs, baselineNs = math.Inf(1), math.Inf(1)
	for range rounds {
		start := time.Now()
		ferry(n)
		ferryNs = min(ferryNs, float64(time.Since(start).Nanoseconds())/float64(n))
		start = time.Now()
		baseline(n)
		baselineNs = min(baselineNs, float64(time.Since(start).Nanoseconds())/float64(n))
	}
	return ferryNs, baselineNs
}

// BenchmarkRouteUncached shows what the cache saves: every call evaluates up
// to 20 rules.
func BenchmarkRouteUncached(b *testing.B) {
	workers := benchWorkers(1000)
	r := benchRouter(b, &Options{CacheSize: -1})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkQueue = r.Route(workers[i%len(workers)])
		i++
	}
}

// BenchmarkParseAndRoute measures the whole batch path for 1,000 workers and
// 20 rules: read all_queues.yml, parse the rules, build the router and route
// every worker into a RoutingTable. route-only excludes the YAML reading.
func BenchmarkParseAndRoute(b *testing.B) {
	workers := benchWorkers(1000)
	yml := workersYAML(workers)

	b.Run("read+parse+route", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ws, err := ReadWorkers(strings.NewReader(yml))
			if err != nil {
				b.Fatal(err)
			}
			r := benchRouter(b, nil)
			if _, err := r.Table(ws); err != nil {
				b.Fatal(err)
			}
		}
		reportPerWorker(b, "read+parse+route-1000-workers-20-rules", len(workers))
	})
	b.Run("parse+route", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := benchRouter(b, nil)
			if _, err := r.Table(workers); err != nil {
				b.Fatal(err)
			}
		}
		reportPerWorker(b, "parse+route-1000-workers-20-rules", len(workers))
	})
}

// reportPerWorker records ns/worker and prints a ferry-bench line. The issue
// names no baseline for the batch path, so none is printed.
func reportPerWorker(b *testing.B, name string, workers int) {
	b.Helper()
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp/float64(workers), "ns/worker")
	b.Logf("ferry-bench: %s ferry=%.2fms (%.0fns/worker) baseline=none", name, perOp/1e6, perOp/float64(workers))
}

func workersYAML(workers []Worker) string {
	var sb strings.Builder
	for _, w := range workers {
		fmt.Fprintf(&sb, "- :name: %s\n  :worker_name: %s\n  :feature_category: :%s\n  :has_external_dependencies: %t\n  :urgency: :%s\n  :resource_boundary: :%s\n  :weight: %d\n  :idempotent: false\n",
			w.QueueName, w.WorkerName, w.FeatureCategory, w.HasExternalDependencies, w.Urgency, w.ResourceBoundary, w.Weight)
		if w.QueueNamespace != "" {
			fmt.Fprintf(&sb, "  :queue_namespace: :%s\n", w.QueueNamespace)
		}
		if len(w.Tags) == 0 {
			sb.WriteString("  :tags: []\n")
		} else {
			fmt.Fprintf(&sb, "  :tags:\n  - :%s\n", strings.Join(w.Tags, "\n  - :"))
		}
	}
	return sb.String()
}

// reportRatio records the interleaved ferry and baseline ns/op and their
// ratio, and prints the project's ferry-bench line.
func reportRatio(b *testing.B, name string, ferry, baseline, target float64) {
	b.Helper()
	ratio := ferry / baseline
	b.ReportMetric(ferry, "ferry-ns/op")
	b.ReportMetric(baseline, "baseline-ns/op")
	b.ReportMetric(ratio, "ratio")
	b.Logf("ferry-bench: %s ferry=%.1fns baseline=%.1fns ratio=%.2f target<=%.0f", name, ferry, baseline, ratio, target)
}

// BenchmarkParseLongValueList parses a selector with 40,000 distinct values
// (a generated worker_name list) and compares it with the baseline of Ferry
// 0.1: the same values split and made distinct with slices.Contains, which
// is quadratic (its Parse took 1.8-2.4 s here). The baseline leaves out the
// rest of the old parser, so the ratio flatters the old code.
func BenchmarkParseLongValueList(b *testing.B) {
	vals := make([]string, 40_000)
	for i := range vals {
		vals[i] = fmt.Sprintf("Bench::Feature%dSync%dWorker", i%37, i)
	}
	list := strings.Join(vals, ",")
	query := "worker_name=" + list
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(query); err != nil {
			b.Fatal(err)
		}
	}
	ferry, baseline := compareInterleaved(3, 1,
		func(int) {
			if _, err := Parse(query); err != nil {
				b.Fatal(err)
			}
		},
		func(int) {
			var distinct []string
			for _, v := range strings.Split(list, ",") {
				if !slices.Contains(distinct, v) {
					distinct = append(distinct, v)
				}
			}
			if len(distinct) != len(vals) {
				b.Fatal("baseline lost values")
			}
		})
	b.ReportMetric(ferry/1e6, "ferry-ms")
	b.ReportMetric(baseline/1e6, "baseline-ms")
	b.Logf("ferry-bench: parse-40000-values ferry=%.2fms baseline=%.0fms ratio=%.4f target<=0.01 (linear parse vs 0.1's slices.Contains dedupe, fastest of 3 interleaved rounds)",
		ferry/1e6, baseline/1e6, ferry/baseline)
}
