package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

// registryInstance names the host's import server among those sharing the
// database. It is stable, so a host that died mid-import ends those
// imports (as failed, notified) as soon as it starts again.
const registryInstance = "registryhost"

// registryOptions is what the registry side needs from the host.
type registryOptions struct {
	db        *storage.DB
	importer  *transfer.Importer
	src       transfer.Bucket
	layout    transfer.Layout
	capacity  int
	notifyURL string // the endpoint's prefix, ending before /repositories/
	secret    string // of the notification endpoint
	token     string // of the import API
	delay     time.Duration
	grace     time.Duration
	copied    *copied
	queues    *queues
	metrics   *prommetrics.Metrics
	logger    *slog.Logger
}

// newRegistry is the registry side of the migration: Ferry's import
// server over the transfer importer, as a container registry embeds it.
// It serves the import API the enqueuer calls (enqueuer.HTTPRegistry),
// runs each pass in the background on the import queue, and delivers the
// outcomes to the notification endpoint from its outbox in Postgres.
func newRegistry(o registryOptions) (*importserver.Server, error) {
	store, err := importserver.NewPostgresStore(o.db, importserver.PostgresOptions{})
	if err != nil {
		return nil, err
	}
	counted := importserver.ObserverFuncs{
		OnImportStart: func(ctx context.Context, _ importserver.ImportStartEvent) context.Context {
			o.queues.count(kindImport)
			return ctx
		},
		OnDeliveryEnd: func(context.Context, importserver.DeliveryEvent) { o.queues.count(kindNotification) },
	}
	return importserver.New(importserver.Config{
		Importer:             delayedImporter{Importer: o.importer, delay: o.delay, copied: o.copied},
		Repositories:         importserver.LayoutRepositories(o.src, o.layout),
		Store:                store,
		Authorize:            importserver.BearerSecret(o.token),
		MaxConcurrentImports: o.capacity,
		Instance:             registryInstance,
		ShutdownGrace:        o.grace,
		Notify:               importserver.NotifyConfig{URL: o.notifyURL, Secret: o.secret},
		Logger:               o.logger.With("job", kindImport, "queue", o.queues.queue(kindImport)),
		Observer:             importserver.MultiObserver(o.metrics.ImportServer(), counted),
	})
}

// delayedImporter makes every pass take at least delay, to watch (or
// test) a host that is busy.
// It also adds what each pass copied to copied.
type delayedImporter struct {
	importserver.Importer
	delay  time.Duration
	copied *copied
}

// copied is what this run's passes copied.
type copied struct{ blobs, bytes atomic.Int64 }

func (d delayedImporter) PreImport(ctx context.Context, repos ...string) (*transfer.Report, error) {
	return d.slow(ctx, func() (*transfer.Report, error) { return d.Importer.PreImport(ctx, repos...) })
}

func (d delayedImporter) Import(ctx context.Context, repos ...string) (*transfer.Report, error) {
	return d.slow(ctx, func() (*transfer.Report, error) { return d.Importer.Import(ctx, repos...) })
}

func (d delayedImporter) slow(ctx context.Context, pass func() (*transfer.Report, error)) (*transfer.Report, error) {
	t0 := time.Now()
	rep, err := pass()
	if rep != nil {
		d.copied.blobs.Add(rep.BlobsCopied)
		d.copied.bytes.Add(rep.BytesCopied)
	}
	if err == nil && d.delay > 0 {
		err = sleep(ctx, d.delay-time.Since(t0))
	}
	return rep, err
}
