package prommetrics_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
)

// A host creates the metrics once, on its registry, passes the observers
// to the packages it runs and serves the registry at /metrics. Here a bbm
// worker backfills 10 keys in batches of 4 on bbmtest's in-memory store.
func Example() {
	ctx := context.Background()
	reg := prommetrics.NewRegistry() // Go runtime and process metrics included
	metrics, err := prommetrics.New(reg, prommetrics.Options{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", prommetrics.Handler(reg))

	store := bbmtest.NewStore(bbmtest.StoreOptions{})
	if err := metrics.WatchMigrations(store); err != nil { // ferry_bbm_migrations{status}
		panic(err)
	}
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:    store,
		Catalog:  bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10}),
		Observer: metrics.BBM(), // or bbm.MultiObserver(metrics.BBM(), yours)
		Logger:   slog.New(slog.DiscardHandler),
		Adaptive: bbm.AdaptiveOptions{Off: true},
	})
	_ = w.Register(bbm.WorkFunc("fill", func(context.Context, storage.Querier, bbm.Batch) error { return nil }))
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "fill", BatchSize: 4}); err != nil {
		panic(err)
	}
	if err := w.Run(ctx); err != nil {
		panic(err)
	}

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"ferry_bbm_jobs_finished_total", "ferry_bbm_rows_processed_total", "ferry_bbm_migrations{"} {
			if strings.HasPrefix(line, name) {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// ferry_bbm_jobs_finished_total{migration="fill"} 3
	// ferry_bbm_migrations{status="active"} 0
	// ferry_bbm_migrations{status="failed"} 0
	// ferry_bbm_migrations{status="finished"} 1
	// ferry_bbm_migrations{status="paused"} 0
	// ferry_bbm_migrations{status="running"} 0
	// ferry_bbm_rows_processed_total{migration="fill"} 10
}

// Handler serves a registry for Prometheus to scrape; one line in a host's
// mux.
func ExampleHandler() {
	reg := prometheus.NewRegistry()
	if _, err := prommetrics.New(reg, prommetrics.Options{ConstLabels: prometheus.Labels{"component": "enqueuer"}}); err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", prommetrics.Handler(reg))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	fmt.Println(rec.Code, strings.Contains(rec.Body.String(), `ferry_enqueuer_import_capacity{component="enqueuer"} 0`))
	// Output:
	// 200 true
}
