package prommetrics

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/transfer"
)

// Transfer returns the transfer.Observer that moves the ferry_transfer_*
// metrics, for transfer.Options.Observer and transfer.ImportOptions.Observer.
func (m *Metrics) Transfer() transfer.Observer {
	if m == nil {
		return transfer.ObserverFuncs{}
	}
	return m.transfer
}

type transferObserver struct {
	blobs        *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	blobFailures *prometheus.CounterVec
	blobTime     *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	repos        *prometheus.CounterVec
	repoTime     *prometheus.HistogramVec
	passes       *prometheus.CounterVec
	passTime     *prometheus.HistogramVec
}

var _ transfer.Observer = (*transferObserver)(nil)

func newTransferObserver() *transferObserver {
	const sub = "transfer"
	return &transferObserver{
		blobs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "blobs_total", Help: "Blobs transferred, by method (streamed: copied through this process, server_side: copied by the storage service, skipped: already at the destination)."},
			[]string{"method"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "bytes_total", Help: "Bytes of the blobs transferred, by method (streamed, server_side, skipped)."},
			[]string{"method"}),
		blobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "blob_failures_total", Help: "Blob transfers that failed, by reason (corrupt_in_transit, corrupt_at_rest, missing, bucket_not_found, invalid_digest, cancelled, other)."},
			[]string{"reason"}),
		blobTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "blob_duration_seconds", Help: "Duration of successful blob transfers, retries included, by method.",
			Buckets: blobBuckets}, []string{"method"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "retries_total", Help: "Retried storage operations, by operation (copy, server_side_copy, read, stat, list, write) and cause (throttled, server_error, timeout, truncated, connection, corrupt, source_changed, other)."},
			[]string{"op", "cause"}),
		repos: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "repositories_total", Help: "Repositories an importer finished, by pass (pre_import, final_import) and outcome (imported, failed, too_large, dry_run)."},
			[]string{"pass", "outcome"}),
		repoTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "repository_duration_seconds", Help: "Time to import one repository, by pass.",
			Buckets: repositoryBuckets}, []string{"pass"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: sub,
			Name: "passes_total", Help: "Import passes (PreImport, Import calls), by pass and result (ok, error)."},
			[]string{"pass", "result"}),
		passTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub,
			Name: "pass_duration_seconds", Help: "Duration of import passes, by pass.",
			Buckets: passBuckets}, []string{"pass"}),
	}
}

func (o *transferObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.blobs, o.bytes, o.blobFailures, o.blobTime, o.retries, o.repos, o.repoTime, o.passes, o.passTime}
}

// method is a Result's method as a label value.
func method(r transfer.Result) string {
	switch {
	case r.Skipped:
		return "skipped"
	case r.ServerSide:
		return "server_side"
	}
	return "streamed"
}

// passLabel is a Pass as a label value.
func passLabel(p transfer.Pass) string {
	switch p {
	case transfer.PreImport:
		return "pre_import"
	case transfer.FinalImport:
		return "final_import"
	}
	return OtherLabel
}

// BlobStart implements transfer.Observer: the copy's duration comes with
// BlobEnd's event.
func (o *transferObserver) BlobStart(ctx context.Context, _ transfer.BlobStartEvent) context.Context {
	return ctx
}

// BlobEnd implements transfer.Observer.
func (o *transferObserver) BlobEnd(_ context.Context, e transfer.BlobEvent) {
	if e.Err != nil {
		reason := "other"
		switch {
		case errors.Is(e.Err, transfer.ErrCorruptAtRest):
			reason = "corrupt_at_rest"
		case errors.Is(e.Err, transfer.ErrCorrupt):
			reason = "corrupt_in_transit"
		case errors.Is(e.Err, transfer.ErrBucketNotFound):
			reason = "bucket_not_found"
		case errors.Is(e.Err, transfer.ErrMissingBlob):
			reason = "missing"
		case errors.Is(e.Err, transfer.ErrInvalidDigest):
			reason = "invalid_digest"
		case errors.Is(e.Err, context.Canceled), errors.Is(e.Err, context.DeadlineExceeded):
			reason = "cancelled"
		}
		o.blobFailures.WithLabelValues(reason).Inc()
		return
	}
	m := method(e.Result)
	o.blobs.WithLabelValues(m).Inc()
	o.bytes.WithLabelValues(m).Add(float64(e.Result.Bytes))
	o.blobTime.WithLabelValues(m).Observe(e.Result.Duration.Seconds())
}

// Retried implements transfer.Observer.
func (o *transferObserver) Retried(_ context.Context, e transfer.RetryEvent) {
	op := oneOf(e.Op, OtherLabel, "copy", "server_side_copy", "read", "stat", "list", "write")
	cause := oneOf(e.Cause, OtherLabel, transfer.RetryThrottled, transfer.RetryServerError, transfer.RetryTimeout,
		transfer.RetryTruncated, transfer.RetryConnection, transfer.RetryCorrupt, transfer.RetrySourceChanged, transfer.RetryOther)
	o.retries.WithLabelValues(op, cause).Inc()
}

// RepositoryStart implements transfer.Observer: the repository's
// duration comes with RepositoryEnd's event.
func (o *transferObserver) RepositoryStart(ctx context.Context, _ transfer.RepositoryStartEvent) context.Context {
	return ctx
}

// RepositoryEnd implements transfer.Observer.
func (o *transferObserver) RepositoryEnd(_ context.Context, e transfer.RepositoryEvent) {
	pass := passLabel(e.Pass)
	outcome := oneOf(e.Outcome, OtherLabel, transfer.RepositoryImported, transfer.RepositoryFailed,
		transfer.RepositoryTooLarge, transfer.RepositoryDryRun)
	o.repos.WithLabelValues(pass, outcome).Inc()
	if e.Report.Duration > 0 { // repositories never started have none
		o.repoTime.WithLabelValues(pass).Observe(e.Report.Duration.Seconds())
	}
}

// PassStart implements transfer.Observer: the pass's duration comes with
// PassEnd's event.
func (o *transferObserver) PassStart(ctx context.Context, _ transfer.PassStartEvent) context.Context {
	return ctx
}

// PassEnd implements transfer.Observer.
func (o *transferObserver) PassEnd(_ context.Context, e transfer.PassEvent) {
	pass := passLabel(e.Pass)
	result := "ok"
	if e.Err != nil {
		result = "error"
	}
	o.passes.WithLabelValues(pass, result).Inc()
	o.passTime.WithLabelValues(pass).Observe(e.Duration.Seconds())
}
