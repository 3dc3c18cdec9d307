package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/storage"
)

// The program prints the spans recorded through Ferry's hooks, and the
// metrics recorded through the same hooks.
func Example() {
	if err := run(context.Background(), os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// backfill
	//   · bbm.migration_ended migration=fill status=finished
	//   bbm.job attempt=1 end=4 job_id=2 migration=fill rows=4 start=1
	//     UPDATE items
	//   bbm.job attempt=1 end=8 job_id=3 migration=fill rows=4 start=5 error="bbm: migration \"fill\" job 3 [5, 8] attempt 1: job_failed: deadlock detected"
	//     · exception message=bbm: migration "fill" job 3 [5, 8] attempt 1: job_failed: deadlock detected type=*bbm.JobError
	//     UPDATE items
	//   bbm.job attempt=1 end=10 job_id=4 migration=fill rows=2 start=9
	//     UPDATE items
	//   bbm.job attempt=2 end=8 job_id=3 migration=fill rows=4 start=5
	//     UPDATE items
	// enqueuer.run started=2 stopped=capacity_full
	//   · enqueuer.capacity capacity=2 in_progress=0
	//   · enqueuer.capacity capacity=2 in_progress=1
	//   · enqueuer.skipped reason=too_many_tags repository=acme/huge
	//   · lease.ended key=container_registry:migration:enqueuer_worker reason=released token=1
	//   lease.acquire key=container_registry:migration:enqueuer_worker result=acquired token=1
	//   enqueuer.start import_type=next repository=acme/api result=accepted
	//   enqueuer.start import_type=next repository=acme/web result=accepted
	// PUT /notify
	//   enqueuer.notification outcome=applied repository=acme/api status=pre_import_complete http.response.status_code=200
	// transfer.pass blobs_copied=14 bytes_copied=75484 pass=pre-import
	//   transfer.repository blobs=7 manifests=3 outcome=imported repository=group-00/project-000
	//     · transfer.retry attempt=1 cause=truncated op=read
	//     · transfer.retry attempt=1 cause=truncated op=read
	//     · transfer.retry attempt=1 cause=truncated op=read
	//     transfer.blob ×7
	//   transfer.repository blobs=7 manifests=2 outcome=imported repository=group-00/project-001
	//     · transfer.retry attempt=1 cause=truncated op=read
	//     · transfer.retry attempt=1 cause=truncated op=read
	//     transfer.blob ×7
	// metrics:
	//   ferry_bbm_jobs_failed_total{code="job_failed",migration="fill"} 1
	//   ferry_bbm_jobs_finished_total{migration="fill"} 3
	//   ferry_enqueuer_notifications_total{outcome="applied",status="pre_import_complete"} 1
	//   ferry_enqueuer_starts_total{import_type="next",result="accepted"} 2
	//   ferry_lease_acquires_total{key="container_registry:migration:enqueuer_worker",result="acquired"} 1
	//   ferry_lease_acquires_total{key="container_registry:migration:enqueuer_worker",result="error"} 0
	//   ferry_lease_acquires_total{key="container_registry:migration:enqueuer_worker",result="held"} 0
	//   ferry_transfer_blobs_total{method="streamed"} 14
	//   ferry_transfer_repositories_total{outcome="imported",pass="pre_import"} 2
	//   ferry_transfer_retries_total{cause="truncated",op="copy"} 14
	//   ferry_transfer_retries_total{cause="truncated",op="read"} 5
}

func TestRunIsRepeatable(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, run(context.Background(), &a))
	require.NoError(t, run(context.Background(), &b))
	require.Equal(t, a.String(), b.String())
}

// recorded runs f with a tracer whose spans are recorded, and returns the
// ended spans by name.
func recorded(t *testing.T, f func(trace.Tracer)) map[string][]sdktrace.ReadOnlySpan {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	f(tp.Tracer("test"))
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	return byName
}

// requireNested checks that every child span is a child of a parent span
// that encloses it in time: the spans nest, nothing is backdated.
func requireNested(t *testing.T, parents, children []sdktrace.ReadOnlySpan) {
	t.Helper()
	require.NotEmpty(t, children)
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, p := range parents {
		byID[p.SpanContext().SpanID()] = p
	}
	for _, c := range children {
		p, ok := byID[c.Parent().SpanID()]
		require.True(t, ok, "span %q has no parent among the %d %q spans", c.Name(), len(parents), parents[0].Name())
		require.False(t, c.StartTime().Before(p.StartTime()), "child starts before its parent")
		require.False(t, c.EndTime().After(p.EndTime()), "child ends after its parent")
	}
}

// A bbm job's span is the parent of the spans its Work makes.
func TestJobSpanIsTheWorksParent(t *testing.T) {
	spans := recorded(t, func(tr trace.Tracer) {
		require.NoError(t, backfill(context.Background(), tr, bbmTracer(tr)))
	})
	require.Len(t, spans["bbm.job"], 4)
	require.Len(t, spans["UPDATE items"], 4)
	requireNested(t, spans["bbm.job"], spans["UPDATE items"])
	requireNested(t, spans["backfill"], spans["bbm.job"])
}

// An enqueuer run's span is the parent of its lease's and its registry
// starts' spans.
func TestRunSpanIsTheStartsParent(t *testing.T) {
	spans := recorded(t, func(tr trace.Tracer) {
		locker := lease.Observe(leasetest.NewLocker(leasetest.Options{}), leaseTracer(tr))
		require.NoError(t, enqueue(context.Background(), tr, locker, enqueuerTracer(tr)))
	})
	require.Len(t, spans["enqueuer.run"], 1)
	require.Len(t, spans["enqueuer.start"], 2)
	requireNested(t, spans["enqueuer.run"], spans["enqueuer.start"])
	requireNested(t, spans["enqueuer.run"], spans["lease.acquire"])
	requireNested(t, spans["PUT /notify"], spans["enqueuer.notification"])
}

// A pass's span is the parent of its repositories' spans, and a
// repository's of its blobs' (whose retries are events on them).
func TestImportSpansNest(t *testing.T) {
	spans := recorded(t, func(tr trace.Tracer) {
		require.NoError(t, importLayout(context.Background(), transferTracer(tr)))
	})
	require.Len(t, spans["transfer.pass"], 1)
	require.Len(t, spans["transfer.repository"], 2)
	require.Len(t, spans["transfer.blob"], 14)
	requireNested(t, spans["transfer.pass"], spans["transfer.repository"])
	requireNested(t, spans["transfer.repository"], spans["transfer.blob"])
	for _, b := range spans["transfer.blob"] {
		require.Len(t, b.Events(), 1, "each layer's copy is retried once, on its own span")
	}
}

func TestStorageTracerMarksTheSpan(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	ctx, span := tp.Tracer("test").Start(context.Background(), "read")
	obs := storageTracer()
	obs.ReadRouted(ctx, storage.RouteEvent{Target: storage.TargetReplica, Reason: storage.RouteCaughtUp, Key: "acme/api"})
	obs.ReplicaCheckEnd(obs.ReplicaCheckStart(ctx, storage.ReplicaCheckStartEvent{}), storage.ReplicaEvent{}) // not traced: a no-op
	span.End()
	ended := sr.Ended()
	require.Len(t, ended, 1)
	require.Len(t, ended[0].Events(), 1)
	ev := ended[0].Events()[0]
	require.Equal(t, "storage.read", ev.Name)
	require.Equal(t, " reason=caught_up target=replica", attrs(ev.Attributes))
}
