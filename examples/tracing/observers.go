package main

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
)

// The observers below record OpenTelemetry spans from Ferry's hooks. A
// host copies them (or writes its own): Ferry's packages never import
// OpenTelemetry.
//
// The pattern is the same for every package, whose hooks are shaped like
// pgx's tracers:
//
//   - an operation with a duration has XStart, which starts a span as a
//     child of the span in its context and returns the context with it (the
//     operation runs under it, so spans made inside it, by the host's code,
//     a pgx tracer or otelhttp, are its children), and XEnd, which gets that
//     context back and ends the span with the outcome;
//   - an event without a duration (a skip, a hold, a routed read) becomes an
//     event on the span in its context.

// start starts a span named name as a child of ctx's span, and returns
// ctx with it: the operation runs under it, and its End hook gets it back.
func start(ctx context.Context, t trace.Tracer, name string, attrs ...attribute.KeyValue) context.Context {
	ctx, _ = t.Start(ctx, name, trace.WithAttributes(attrs...))
	return ctx
}

// end ends the span start put in ctx, with what the operation's outcome
// adds.
func end(ctx context.Context, err error, attrs ...attribute.KeyValue) {
	s := trace.SpanFromContext(ctx)
	s.SetAttributes(attrs...)
	if err != nil {
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}

// bbmTracer records a span per job attempt (the Work's own spans are its
// children), and holds and ended migrations as events.
func bbmTracer(t trace.Tracer) bbm.Observer {
	return bbm.ObserverFuncs{
		OnJobStart: func(ctx context.Context, e bbm.JobStartEvent) context.Context {
			return start(ctx, t, "bbm.job",
				attribute.String("bbm.migration", e.Migration),
				attribute.Int64("bbm.job_id", e.JobID),
				attribute.String("bbm.start", e.Start.String()),
				attribute.String("bbm.end", e.End.String()),
				attribute.Int("bbm.attempt", e.Attempt),
				attribute.Int64("bbm.rows", e.Rows))
		},
		OnJobEnd: func(ctx context.Context, e bbm.JobEvent) { end(ctx, e.Err) },
		OnThrottled: func(ctx context.Context, e bbm.ThrottleEvent) {
			trace.SpanFromContext(ctx).AddEvent("bbm.throttled", trace.WithAttributes(
				attribute.String("bbm.reason", e.Reason), attribute.String("bbm.wait", e.Wait.String())))
		},
		OnMigrationEnded: func(ctx context.Context, m *bbm.Migration) {
			trace.SpanFromContext(ctx).AddEvent("bbm.migration_ended", trace.WithAttributes(
				attribute.String("bbm.migration", m.Name), attribute.String("bbm.status", string(m.Status))))
		},
	}
}

// enqueuerTracer records a span per run (the lease's and the registry
// starts' spans are its children), per registry start and per
// notification, and skips, aborts and the capacity as events.
func enqueuerTracer(t trace.Tracer) enqueuer.Observer {
	return enqueuer.ObserverFuncs{
		OnRunStart: func(ctx context.Context, _ enqueuer.RunStartEvent) context.Context {
			return start(ctx, t, "enqueuer.run")
		},
		OnRunEnd: func(ctx context.Context, e enqueuer.RunEvent) {
			end(ctx, e.Err, attribute.String("enqueuer.stopped", string(e.Report.Stopped)),
				attribute.Int("enqueuer.started", len(e.Report.Started)))
		},
		OnStartImportStart: func(ctx context.Context, e enqueuer.StartImportStartEvent) context.Context {
			return start(ctx, t, "enqueuer.start",
				// A path is fine on a span (one value per span), never
				// as a metric label.
				attribute.String("enqueuer.repository", e.Repository.Path),
				attribute.String("enqueuer.import_type", string(e.ImportType)))
		},
		OnStartImportEnd: func(ctx context.Context, e enqueuer.StartEvent) {
			end(ctx, e.Err, attribute.String("enqueuer.result", string(e.Result)))
		},
		OnSkipped: func(ctx context.Context, e enqueuer.SkipEvent) {
			trace.SpanFromContext(ctx).AddEvent("enqueuer.skipped", trace.WithAttributes(
				attribute.String("enqueuer.repository", e.Repository.Path), attribute.String("enqueuer.reason", e.Reason)))
		},
		OnAborted: func(ctx context.Context, e enqueuer.AbortEvent) {
			trace.SpanFromContext(ctx).AddEvent("enqueuer.aborted", trace.WithAttributes(
				attribute.String("enqueuer.repository", e.Repository.Path), attribute.Bool("enqueuer.stale", e.Stale)))
		},
		OnCapacityChecked: func(ctx context.Context, e enqueuer.CapacityEvent) {
			trace.SpanFromContext(ctx).AddEvent("enqueuer.capacity", trace.WithAttributes(
				attribute.Int("enqueuer.in_progress", e.InProgress), attribute.Int("enqueuer.capacity", e.Capacity)))
		},
		OnNotifyStart: func(ctx context.Context, _ enqueuer.NotifyStartEvent) context.Context {
			return start(ctx, t, "enqueuer.notification")
		},
		OnNotifyEnd: func(ctx context.Context, e enqueuer.NotifyEvent) {
			var err error
			if e.Outcome == enqueuer.NotificationError {
				err = e.Err
			}
			end(ctx, err,
				attribute.String("enqueuer.repository", e.Path),
				attribute.String("enqueuer.status", e.Status),
				attribute.String("enqueuer.outcome", string(e.Outcome)),
				attribute.Int("http.response.status_code", e.Code))
		},
	}
}

// storageTracer marks where each routed read went on the span in its
// context.
func storageTracer() storage.Observer {
	return storage.ObserverFuncs{
		OnReadRouted: func(ctx context.Context, e storage.RouteEvent) {
			trace.SpanFromContext(ctx).AddEvent("storage.read", trace.WithAttributes(
				attribute.String("storage.target", e.Target.String()), attribute.String("storage.reason", string(e.Reason))))
		},
	}
}

// leaseTracer records a span per Acquire and Renew (use it with
// lease.Observe), and the end of a lease and fence checks as events.
func leaseTracer(t trace.Tracer) lease.Observer {
	return lease.ObserverFuncs{
		OnAcquireStart: func(ctx context.Context, e lease.AcquireStartEvent) context.Context {
			return start(ctx, t, "lease.acquire", attribute.String("lease.key", e.Key))
		},
		OnAcquireEnd: func(ctx context.Context, e lease.AcquireEvent) {
			var err error
			if e.Result == lease.AcquireFailed {
				err = e.Err // a held key is an answer, not an error
			}
			end(ctx, err, attribute.String("lease.result", string(e.Result)), attribute.Int64("lease.token", e.Token))
		},
		OnRenewStart: func(ctx context.Context, e lease.RenewStartEvent) context.Context {
			return start(ctx, t, "lease.renew", attribute.String("lease.key", e.Key), attribute.Int64("lease.token", e.Token))
		},
		OnRenewEnd: func(ctx context.Context, e lease.RenewEvent) { end(ctx, e.Err) },
		OnLeaseEnded: func(ctx context.Context, e lease.EndEvent) {
			trace.SpanFromContext(ctx).AddEvent("lease.ended", trace.WithAttributes(
				attribute.String("lease.key", e.Key), attribute.Int64("lease.token", e.Token),
				attribute.String("lease.reason", string(e.Reason))))
		},
		OnFenceChecked: func(ctx context.Context, e lease.FenceEvent) {
			trace.SpanFromContext(ctx).AddEvent("lease.fence", trace.WithAttributes(
				attribute.String("lease.key", e.Key), attribute.Int64("lease.token", e.Token),
				attribute.Bool("lease.fenced", e.Err != nil)))
		},
	}
}

// transferTracer records a span per pass, per repository and per blob
// transfer, nested as they run (a blob shared by several repositories is
// under the first that asked for it), and retries as events.
func transferTracer(t trace.Tracer) transfer.Observer {
	return transfer.ObserverFuncs{
		OnPassStart: func(ctx context.Context, e transfer.PassStartEvent) context.Context {
			return start(ctx, t, "transfer.pass", attribute.String("transfer.pass", e.Pass.String()))
		},
		OnPassEnd: func(ctx context.Context, e transfer.PassEvent) {
			var attrs []attribute.KeyValue
			if e.Report != nil {
				attrs = append(attrs, attribute.Int64("transfer.blobs_copied", e.Report.BlobsCopied),
					attribute.Int64("transfer.bytes_copied", e.Report.BytesCopied))
			}
			end(ctx, e.Err, attrs...)
		},
		OnRepositoryStart: func(ctx context.Context, e transfer.RepositoryStartEvent) context.Context {
			return start(ctx, t, "transfer.repository", attribute.String("transfer.repository", e.Name))
		},
		OnRepositoryEnd: func(ctx context.Context, e transfer.RepositoryEvent) {
			end(ctx, e.Report.Err,
				attribute.String("transfer.outcome", string(e.Outcome)),
				attribute.Int("transfer.manifests", e.Report.Manifests),
				attribute.Int("transfer.blobs", e.Report.Blobs))
		},
		OnBlobStart: func(ctx context.Context, e transfer.BlobStartEvent) context.Context {
			return start(ctx, t, "transfer.blob", attribute.String("transfer.digest", string(e.Digest)))
		},
		OnBlobEnd: func(ctx context.Context, e transfer.BlobEvent) {
			end(ctx, e.Err,
				attribute.String("transfer.method", e.Result.Method()),
				attribute.Int64("transfer.bytes", e.Result.Bytes),
				attribute.Int("transfer.attempts", e.Result.Attempts))
		},
		OnRetried: func(ctx context.Context, e transfer.RetryEvent) {
			trace.SpanFromContext(ctx).AddEvent("transfer.retry", trace.WithAttributes(
				attribute.String("transfer.op", e.Op), attribute.String("transfer.cause", string(e.Cause)),
				attribute.Int("transfer.attempt", e.Attempt)))
		},
	}
}
