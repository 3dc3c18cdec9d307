// Command tracing shows how a host records OpenTelemetry spans through
// Ferry's observer hooks, next to Prometheus metrics on the same hooks,
// without OpenTelemetry in any of Ferry's packages. It runs offline: a bbm
// backfill and an enqueuer run on Ferry's in-memory fakes, and a
// notification to the enqueuer's Handler, traced into OpenTelemetry's
// in-memory exporter (tracetest), then prints the spans as a tree and a few
// of the metrics.
//
//	go run ./examples/tracing
//
// A real host would configure an OTLP exporter instead of the in-memory
// one; the observers (observers.go) stay the same.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// Tracing: spans go to an in-memory exporter, synchronously.
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer tp.Shutdown(context.WithoutCancel(ctx))
	tracer := tp.Tracer("github.com/ferryhq/ferry/examples/tracing")

	// Metrics on the same hooks.
	reg := prometheus.NewRegistry()
	metrics, err := prommetrics.New(reg, prommetrics.Options{})
	if err != nil {
		return err
	}

	if err := backfill(ctx, tracer, bbm.MultiObserver(metrics.BBM(), bbmTracer(tracer))); err != nil {
		return err
	}
	locker := lease.Observe(leasetest.NewLocker(leasetest.Options{}), lease.MultiObserver(metrics.Lease(), leaseTracer(tracer)))
	if err := enqueue(ctx, tracer, locker, enqueuer.MultiObserver(metrics.Enqueuer(), enqueuerTracer(tracer))); err != nil {
		return err
	}
	if err := tp.ForceFlush(ctx); err != nil {
		return err
	}
	printTree(out, exporter.GetSpans())
	return printMetrics(out, reg, "ferry_bbm_jobs_finished_total", "ferry_bbm_jobs_failed_total",
		"ferry_enqueuer_starts_total", "ferry_enqueuer_notifications_total", "ferry_lease_acquires_total")
}

var quiet = slog.New(slog.DiscardHandler)

// backfill runs a bbm migration of 10 keys in batches of 4 under a
// "backfill" span; the first attempt of keys 5..8 fails and is retried.
func backfill(ctx context.Context, tracer trace.Tracer, obs bbm.Observer) error {
	ctx, span := tracer.Start(ctx, "backfill")
	defer span.End()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:      bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog:    bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10}),
		Observer:   obs,
		Logger:     quiet,
		BatchPause: -1, RetryBackoff: time.Millisecond,
	})
	var failed atomic.Bool
	err := w.Register(bbm.WorkFunc("fill", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		if b.Start == 5 && failed.CompareAndSwap(false, true) {
			return errors.New("deadlock detected")
		}
		return nil
	}))
	if err != nil {
		return err
	}
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "fill", BatchSize: 4}); err != nil {
		return err
	}
	return w.Run(ctx)
}

// enqueue runs the enqueuer once (capacity 2, three repositories, one with
// too many tags) under an "enqueuer.Run" span, with its lease taken from
// locker, then the registry notifies that one pre-import completed.
func enqueue(ctx context.Context, tracer trace.Tracer, locker lease.Locker, obs enqueuer.Observer) error {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range []enqueuer.NewRepository{{Path: "acme/api", TagCount: 12}, {Path: "acme/huge", TagCount: 5000}, {Path: "acme/web", TagCount: 3}} {
		r.CreatedAt = epoch.Add(time.Duration(i) * time.Minute)
		if _, err := store.Add(ctx, r); err != nil {
			return err
		}
	}
	enq, err := enqueuer.New(enqueuer.Config{
		Store: store, Registry: enqueuertest.NewRegistry(enqueuertest.RegistryOptions{}),
		Locker:   locker,
		Capacity: func(context.Context) int { return 2 }, MaxTagsCount: 1000,
		Strategy: enqueuer.Loop{}, Logger: quiet, Observer: obs,
	})
	if err != nil {
		return err
	}
	runCtx, span := tracer.Start(ctx, "enqueuer.Run")
	_, err = enq.Run(runCtx)
	span.End()
	if err != nil {
		return err
	}

	// The registry's notification; a host would have otelhttp's server
	// span in the request's context, as this one does.
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secret: "s3cret", Logger: quiet, Observer: obs})
	if err != nil {
		return err
	}
	reqCtx, span := tracer.Start(ctx, "PUT /notify")
	defer span.End()
	req := httptest.NewRequestWithContext(reqCtx, http.MethodPut, "/api/repositories/acme/api/migration/status",
		strings.NewReader(`{"status":"pre_import_complete"}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("notification answered %d: %s", rec.Code, rec.Body)
	}
	return nil
}

// printTree prints spans under their parents, in start order, with their
// attributes and events.
func printTree(out io.Writer, spans tracetest.SpanStubs) {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	for _, s := range spans {
		children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
	}
	var walk func(parent trace.SpanID, depth int)
	walk = func(parent trace.SpanID, depth int) {
		kids := children[parent]
		slices.SortStableFunc(kids, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
		for _, s := range kids {
			indent := strings.Repeat("  ", depth)
			line := indent + s.Name + attrs(s.Attributes)
			if s.Status.Description != "" {
				line += " error=" + fmt.Sprintf("%q", s.Status.Description)
			}
			fmt.Fprintln(out, line)
			for _, ev := range s.Events {
				fmt.Fprintln(out, indent+"  · "+ev.Name+attrs(ev.Attributes))
			}
			walk(s.SpanContext.SpanID(), depth+1)
		}
	}
	walk(trace.SpanID{}, 0)
}

// attrs formats attributes as " key=value ...", sorted by key, without
// their package prefix.
func attrs(kvs []attribute.KeyValue) string {
	kvs = slices.Clone(kvs)
	slices.SortFunc(kvs, func(a, b attribute.KeyValue) int { return cmp.Compare(a.Key, b.Key) })
	var sb strings.Builder
	for _, kv := range kvs {
		key := string(kv.Key)
		if i := strings.IndexByte(key, '.'); i >= 0 && !strings.HasPrefix(key, "http.") {
			key = key[i+1:]
		}
		fmt.Fprintf(&sb, " %s=%s", key, kv.Value.Emit())
	}
	return sb.String()
}

// printMetrics prints the named metrics' series as Prometheus would scrape
// them.
func printMetrics(out io.Writer, g prometheus.Gatherer, names ...string) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "metrics:")
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		var sb strings.Builder
		if _, err := expfmt.MetricFamilyToText(&sb, mf); err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(sb.String()))
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "#") {
				fmt.Fprintln(out, "  "+sc.Text())
			}
		}
	}
	return nil
}
