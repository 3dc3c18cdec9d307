// Command tracing shows how a host records OpenTelemetry spans through
// Ferry's observer hooks, next to Prometheus metrics on the same hooks,
// without OpenTelemetry in any of Ferry's packages. It runs offline: a bbm
// backfill and an enqueuer run (under a lease) on Ferry's in-memory fakes, a
// notification to the enqueuer's Handler and a small layout import between
// in-memory buckets, traced into OpenTelemetry's in-memory exporter
// (tracetest); then it prints the spans as a tree and a few of the metrics.
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
	"maps"
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
	"gocloud.dev/blob/memblob"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
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
	if err := importLayout(ctx, transfer.MultiObserver(metrics.Transfer(), transferTracer(tracer))); err != nil {
		return err
	}
	if err := tp.ForceFlush(ctx); err != nil {
		return err
	}
	printTree(out, exporter.GetSpans())
	return printMetrics(out, reg, "ferry_bbm_jobs_finished_total", "ferry_bbm_jobs_failed_total",
		"ferry_enqueuer_starts_total", "ferry_enqueuer_notifications_total", "ferry_lease_acquires_total",
		"ferry_transfer_blobs_total", "ferry_transfer_retries_total", "ferry_transfer_repositories_total")
}

var quiet = slog.New(slog.DiscardHandler)

// backfill runs a bbm migration of 10 keys in batches of 4 under a
// "backfill" span; the first attempt of keys 5..8 fails and is retried
// after the other ranges.
func backfill(ctx context.Context, tracer trace.Tracer, obs bbm.Observer) error {
	ctx, span := tracer.Start(ctx, "backfill")
	defer span.End()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:        bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog:      bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10}),
		Observer:     obs,
		Logger:       quiet,
		RetryBackoff: time.Millisecond,
		Adaptive:     bbm.AdaptiveOptions{Off: true}, // batches of exactly 4
	})
	var failed atomic.Bool
	err := w.Register(bbm.WorkFunc("fill", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		// The Work's own span (a host's pgx tracer would make one per
		// statement) is a child of the job's span: the Work runs under
		// the context bbm's JobStart hook returned.
		_, span := tracer.Start(ctx, "UPDATE items")
		defer span.End()
		if b.Start.Equal(bbm.IntKey(5)) && failed.CompareAndSwap(false, true) {
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
// too many tags), with its lease taken from locker, then the registry
// notifies that one pre-import completed.
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
	// The enqueuer's own RunStart hook makes the run's span: no span of
	// the host's around Run is needed.
	if _, err = enq.Run(ctx); err != nil {
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

// importLayout generates a small registry in the distribution layout and
// pre-imports it from one in-memory bucket to another; every first read of
// a layer is cut short once, and retried.
func importLayout(ctx context.Context, obs transfer.Observer) error {
	srcBlob, dstBlob := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer srcBlob.Close()
	defer dstBlob.Close()
	src, dst := gocloudblob.New(srcBlob), gocloudblob.New(dstBlob)
	spec := transfertest.SmallSpec(1)
	spec.Repositories, spec.Images, spec.NestedFraction, spec.DanglingLayers = 2, 3, 0, 0
	gen, err := transfertest.Generate(ctx, src, spec)
	if err != nil {
		return err
	}
	flaky, _ := faultblob.Wrap(src, faultblob.Options{Inject: faultblob.OnKeys("/blobs/",
		faultblob.FailFirst(1, faultblob.TruncateRead, faultblob.OpRead))})
	retry := transfer.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	tr, err := transfer.New(flaky, dst, transfer.Options{Retry: retry, Observer: obs})
	if err != nil {
		return err
	}
	im, err := transfer.NewImporter(flaky, tr, transfertest.NewMemSink(), transfer.ImportOptions{
		Retry: retry, Observer: obs, RepositoryConcurrency: 1})
	if err != nil {
		return err
	}
	// The Importer's PassStart hook makes the pass's span.
	_, err = im.PreImport(ctx, gen.Repositories[0].Name, gen.Repositories[1].Name)
	return err
}

// printTree prints spans under their parents, in start order, with their
// attributes and events. Siblings (or events) of one name beyond four,
// such as blobs, are counted on one line at the end instead, since they
// run concurrently in no fixed order.
func printTree(out io.Writer, spans tracetest.SpanStubs) {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	for _, s := range spans {
		children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
	}
	var walk func(parent trace.SpanID, depth int)
	walk = func(parent trace.SpanID, depth int) {
		indent := strings.Repeat("  ", depth)
		kids := children[parent]
		slices.SortStableFunc(kids, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
		many := crowded(kids, func(s tracetest.SpanStub) string { return s.Name })
		for _, s := range kids {
			if many[s.Name] > 0 {
				continue
			}
			line := indent + s.Name + attrs(s.Attributes)
			if s.Status.Description != "" {
				line += " error=" + fmt.Sprintf("%q", s.Status.Description)
			}
			fmt.Fprintln(out, line)
			manyEvents := crowded(s.Events, func(e sdktrace.Event) string { return e.Name })
			for _, ev := range s.Events {
				if manyEvents[ev.Name] == 0 {
					fmt.Fprintln(out, indent+"  · "+ev.Name+attrs(ev.Attributes))
				}
			}
			for _, name := range slices.Sorted(maps.Keys(manyEvents)) {
				fmt.Fprintf(out, "%s  · %s ×%d\n", indent, name, manyEvents[name])
			}
			walk(s.SpanContext.SpanID(), depth+1)
		}
		for _, name := range slices.Sorted(maps.Keys(many)) {
			fmt.Fprintf(out, "%s%s ×%d\n", indent, name, many[name])
		}
	}
	walk(trace.SpanID{}, 0)
}

// crowded counts the names that more than four of xs share.
func crowded[T any](xs []T, name func(T) string) map[string]int {
	n := map[string]int{}
	for _, x := range xs {
		n[name(x)]++
	}
	for k, v := range n {
		if v <= 4 {
			delete(n, k)
		}
	}
	return n
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
