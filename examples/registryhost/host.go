package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/dashboard/importview"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/prommetrics"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// generatedMarker is written to the source bucket once the sample registry
// is complete, so that a run interrupted while generating starts over.
const generatedMarker = "registryhost/generated"

// host is one run of the registry host: the components it wired and what
// it needs to report on them.
type host struct {
	cfg    config
	out    io.Writer
	logger *slog.Logger
	began  time.Time

	dir      string
	db       *storage.DB
	store    *enqueuer.PostgresStore
	enq      *enqueuer.Enqueuer
	queues   *queues
	loop     *enqueueLoop
	admin    *bbm.Admin
	holder   string
	locker   *pglease.Locker
	registry *importserver.Server
	copied   copied
	running  bool // every component started
	stopping time.Time
}

// run is the whole program without the process: it wires Ferry's packages
// into one host, runs until ctx ends (a signal) or, with ExitWhenDone,
// until everything is done, and then shuts down gracefully: the enqueuer
// starts nothing more and finishes its run, the bbm worker finishes its
// job, running import passes finish (for up to ShutdownTimeout, after
// which they are cancelled, recorded as failed and notified), outcomes are
// delivered, the endpoint closes, leases are released, and every goroutine it
// started has ended when it returns.
func run(ctx context.Context, cfg config, out io.Writer) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	level := slog.LevelWarn
	if cfg.Verbose {
		level = slog.LevelInfo
	}
	h := &host{cfg: cfg, out: out, began: time.Now(),
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		holder: fmt.Sprintf("registryhost/%d", os.Getpid())}

	// stop begins the graceful shutdown; hard ends what is still running
	// ShutdownTimeout later.
	stop, stopNow := context.WithCancel(ctx)
	defer stopNow()
	hard, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()

	// teardown runs in reverse order of registration: the last component
	// started stops first.
	var teardown []func()
	defer func() {
		stopNow()
		timer := time.AfterFunc(cfg.ShutdownTimeout, hardStop)
		defer timer.Stop()
		for i := len(teardown) - 1; i >= 0; i-- {
			teardown[i]()
		}
		h.say("registryhost: stopped after %s", time.Since(h.began).Round(time.Millisecond))
	}()
	if err := h.start(stop, hard, &teardown); err != nil {
		if ctx.Err() != nil {
			h.say("shutting down: signal received while starting (%v)", err)
			return nil
		}
		return err
	}
	return h.wait(stop, stopNow)
}

func (h *host) say(format string, args ...any) { fmt.Fprintf(h.out, format+"\n", args...) }

// start opens and starts everything, registering how to stop each part.
func (h *host) start(stop, hard context.Context, teardown *[]func()) error {
	cfg := h.cfg
	defer func(t0 time.Time) { h.logger.Info("registryhost: started", "duration", time.Since(t0)) }(time.Now())

	// Where the buckets live.
	h.dir = cfg.Dir
	if h.dir == "" {
		dir, err := os.MkdirTemp("", "ferry-registryhost-")
		if err != nil {
			return err
		}
		h.dir = dir
		*teardown = append(*teardown, func() {
			if cfg.Keep {
				h.say("kept %s", dir)
			} else {
				os.RemoveAll(dir)
			}
		})
	}

	// Metrics: every package reports to them; GET /metrics serves them.
	metricsReg := prommetrics.NewRegistry()
	metrics, err := prommetrics.New(metricsReg, prommetrics.Options{})
	if err != nil {
		return err
	}

	// Storage: Ferry's schema, then the host's.
	db, how, closeDB, err := openStorage(stop, cfg.DatabaseURL, metrics.Storage())
	if err != nil {
		return err
	}
	*teardown = append(*teardown, closeDB)
	h.db = db
	h.say("storage: %s", how)
	if err := storage.MigrateWith(stop, db, storage.MigrateOptions{Logger: h.logger}); err != nil {
		return fmt.Errorf("migrating Ferry's schema: %w", err)
	}
	seeded, err := ensureSchema(stop, db, cfg.BackfillRows)
	if err != nil {
		return err
	}
	if seeded {
		h.say("backfill table: %s with %d rows, size_bucket empty", backfillTable, cfg.BackfillRows)
	}
	*teardown = append(*teardown, h.summary) // after every component stopped, before the database closes

	// Routing: which queue each kind of job goes to.
	rules, from, err := loadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	if h.queues, err = newQueues(rules, from); err != nil {
		return err
	}
	h.queues.printTable(h.out)
	for _, k := range jobKinds() {
		h.logger.Info("registryhost: routing", "job", k, "queue", h.queues.queue(k), "worker", jobWorker(k).WorkerName)
	}

	// The source registry (generated once) and the destination.
	src, dst, err := h.openBuckets(stop, teardown)
	if err != nil {
		return err
	}
	layout, err := transfer.NewLayout("")
	if err != nil {
		return err
	}
	repos, err := h.ensureSource(stop, src, layout)
	if err != nil {
		return err
	}
	tr, err := transfer.New(src, dst, transfer.Options{Logger: h.logger, Observer: metrics.Transfer()})
	if err != nil {
		return err
	}
	progress := importview.NewProgress() // the copies running now, for the dashboard
	im, err := transfer.NewImporter(src, tr, transfer.NewLayoutSink(dst, layout, transfer.RetryPolicy{}),
		transfer.ImportOptions{Logger: h.logger, Observer: metrics.Transfer(), Progress: progress.Record})
	if err != nil {
		return err
	}

	// The enqueuer's store knows every repository to migrate.
	h.store, err = enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{Logger: h.logger})
	if err != nil {
		return err
	}
	reader := transfer.NewLayoutReader(src, layout, transfer.RetryPolicy{})
	added := 0
	for _, path := range repos {
		tags, err := reader.Tags(stop, path)
		if err != nil {
			return err
		}
		_, err = h.store.Add(stop, enqueuer.NewRepository{Path: path, TagCount: len(tags)})
		switch {
		case errors.Is(err, enqueuer.ErrExists):
		case err != nil:
			return fmt.Errorf("adding %s to the enqueuer: %w", path, err)
		default:
			added++
		}
	}
	h.say("enqueuer: %d repositories to migrate (%d new), capacity %d, ParallelLoop under a pglease lease", len(repos), added, cfg.Capacity)

	// The registry side (Ferry's import server), the enqueuer, and the
	// notification endpoint, all on one loopback listener.
	secret := cfg.Secret
	if secret == "" {
		secret = randomSecret()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	addr := ln.Addr().String()
	token := randomSecret()
	h.registry, err = newRegistry(registryOptions{db: db, importer: im, src: src, layout: layout, capacity: cfg.Capacity,
		notifyURL: "http://" + addr + "/internal/registry", secret: secret, token: token, delay: cfg.ImportDelay,
		grace: cfg.ShutdownTimeout, copied: &h.copied, queues: h.queues, metrics: metrics, logger: h.logger})
	if err != nil {
		ln.Close()
		return err
	}
	reg, err := enqueuer.NewHTTPRegistry(enqueuer.HTTPRegistryOptions{BaseURL: "http://" + addr, Token: token, Logger: h.logger})
	if err != nil {
		ln.Close()
		return err
	}

	h.locker = pglease.New(db, pglease.Options{Holder: h.holder})
	enq, err := enqueuer.New(enqueuer.Config{
		Store:    h.store,
		Registry: reg,
		Locker:   lease.Observe(h.locker, metrics.Lease()),
		Observer: metrics.Enqueuer(),
		LeaseTTL: cfg.LeaseTTL,
		Capacity: func(context.Context) int { return cfg.Capacity },
		Enabled:  func(context.Context) bool { return stop.Err() == nil },
		Strategy: enqueuer.ParallelLoop{},
		// The import server reports running imports' progress: forecasts
		// (status, dashboard, metrics) use it.
		ForecastProgress: true,
		Logger:           h.logger.With("job", kindEnqueue, "queue", h.queues.queue(kindEnqueue)),
	})
	if err != nil {
		return err
	}
	h.enq = enq
	if err := metrics.WatchEnqueuer(enq); err != nil {
		return err
	}
	if h.loop, err = newEnqueueLoop(enq, cfg.EnqueueEvery, h.queues, h.logger); err != nil {
		return err
	}
	handler, err := enqueuer.NewHandler(enqueuer.HandlerOptions{
		Store:    h.store,
		Secret:   secret,
		OnChange: h.loop.sched.OnChange,
		Observer: metrics.Enqueuer(),
		Logger:   h.logger.With("job", kindNotification, "queue", h.queues.queue(kindNotification)),
	})
	if err != nil {
		return err
	}

	// The backfill: the host's Work on a bbm Worker.
	work := sizeBucketWork{delay: cfg.BatchDelay}
	w := bbm.NewWorker(db, bbm.Options{
		Logger:     h.logger.With("job", kindBackfill, "queue", h.queues.queue(kindBackfill)),
		Interval:   cfg.BackfillInterval,
		MaxBackoff: 5 * time.Second,
		Observer: bbm.MultiObserver(metrics.BBM(),
			bbm.ObserverFuncs{OnJobStart: func(ctx context.Context, _ bbm.JobStartEvent) context.Context {
				h.queues.count(kindBackfill)
				return ctx
			}}),
	})
	if err := w.Register(work); err != nil {
		return err
	}
	h.admin = w.Admin()
	if err := metrics.WatchMigrations(bbm.NewPostgresStore(db, bbm.PostgresStoreOptions{})); err != nil {
		return err
	}
	m, err := registerBackfill(stop, h.admin, work, cfg.BatchSize)
	if err != nil {
		return fmt.Errorf("registering the backfill: %w", err)
	}
	h.say("backfill: migration %q on %s (keys %s..%s, batch %d) is %s", m.Name, m.QualifiedTable(), m.Lower, m.Upper, m.BatchSize, m.Status)

	// Everything is wired: serve the endpoints, then start the workers.
	mux := http.NewServeMux()
	mux.Handle("/internal/registry/", handler)
	mux.Handle("/gitlab/v1/import/", h.registry.Handler())
	mux.HandleFunc("GET /status", h.serveStatus)
	mux.Handle("GET /metrics", prommetrics.Handler(metricsReg))
	if err := h.mountDashboard(mux, enq, progress); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	*teardown = append(*teardown, func() {
		if err := srv.Shutdown(hard); err != nil {
			srv.Close()
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			h.logger.Error("registryhost: notification endpoint failed", "error", err)
		}
	})
	h.say("notifications: http://%s/internal/registry/repositories/<path>/migration/status (import API: http://%s/gitlab/v1/import/<path>/, progress: GET http://%s/status, metrics: GET http://%s/metrics)", addr, addr, addr, addr)
	h.say("dashboard: http://%s%s/ (actions after http://%s/ferry-login?token=%s)", addr, dashboardPrefix, addr, cfg.AdminToken)
	// The import server stops before the endpoint closes: running passes
	// get ShutdownTimeout to finish, the rest are cancelled and recorded as
	// failed, and the outcomes are delivered to the endpoint.
	*teardown = append(*teardown, func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+15*time.Second)
		defer cancel()
		if err := h.registry.Shutdown(ctx); err != nil {
			h.logger.Warn("registryhost: import server shutdown", "error", err)
		}
	})

	if err := w.Start(hard); err != nil {
		return err
	}
	*teardown = append(*teardown, func() {
		if err := w.Stop(hard); err != nil {
			h.logger.Warn("registryhost: backfill worker stopped", "error", err)
		}
	})

	// The import server ends what a crashed earlier run left importing
	// (and notifies that); undelivered outcomes are delivered. Then the
	// enqueuer.
	if err := h.registry.Start(stop); err != nil {
		return err
	}
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		h.loop.run(stop, hard)
	}()
	*teardown = append(*teardown, func() {
		h.stopping = time.Now()
		<-loopDone
	})
	h.running = true
	return nil
}

// wait prints progress until stop ends or, with ExitWhenDone, until
// everything is done.
func (h *host) wait(stop context.Context, stopNow context.CancelFunc) error {
	var status <-chan time.Time
	if h.cfg.StatusEvery > 0 {
		t := time.NewTicker(h.cfg.StatusEvery)
		defer t.Stop()
		status = t.C
	}
	check := time.NewTicker(200 * time.Millisecond)
	defer check.Stop()
	h.say("running: SIGINT (Ctrl-C) or SIGTERM shuts down gracefully")
	for {
		select {
		case <-stop.Done():
			h.say("shutting down: signal received; running jobs get up to %s", h.cfg.ShutdownTimeout)
			return nil
		case <-status:
			if s, err := h.snapshot(stop); err == nil {
				h.say("[%6s] %s", time.Since(h.began).Round(100*time.Millisecond), s)
			}
		case <-check.C:
			if !h.cfg.ExitWhenDone {
				continue
			}
			s, err := h.snapshot(stop)
			if err != nil || !s.done() {
				continue
			}
			h.say("shutting down: everything is done")
			stopNow()
			return s.err()
		}
	}
}

// summary reports the final state and checks that the enqueuer lease was
// released; it runs after every component stopped.
func (h *host) summary() {
	if !h.running {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.say("shutdown: enqueuer, backfill worker, queues and endpoint stopped in %s", time.Since(h.stopping).Round(time.Millisecond))
	if s, err := h.snapshot(ctx); err == nil {
		h.say("summary: %s", s.long(filepath.Join(h.dir, "dst")))
	} else {
		h.say("summary: %v", err)
	}
	h.queues.printCounts(h.out)
	h.say("enqueuer runs: %d, imports started: %d", h.loop.runs.Load(), h.loop.started.Load())
	// The lease is free if it can be taken at once (with a ttl short
	// enough not to stand in anyone's way) and given back.
	l, err := h.locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Second)
	if err != nil {
		h.say("leases: the enqueuer lease is not free: %v", err)
		return
	}
	if err := l.Release(ctx); err != nil {
		h.say("leases: %v", err)
		return
	}
	h.say("leases: released (the enqueuer lease is free)")
}

// openStorage connects to url, or to a throwaway server when url is "".
func openStorage(ctx context.Context, url string, obs storage.Observer) (*storage.DB, string, func(), error) {
	how := "PostgreSQL at -database-url"
	stopServer := func() {}
	if url == "" {
		t0 := time.Now()
		srv, err := storagetest.Start(ctx, storagetest.ServerOptions{})
		if err != nil {
			return nil, "", nil, fmt.Errorf("starting a throwaway PostgreSQL (or pass -database-url): %w", err)
		}
		stopServer = func() { _ = srv.Stop() }
		url = srv.URL("postgres")
		how = fmt.Sprintf("throwaway PostgreSQL in %s (started in %s)", srv.Dir(), time.Since(t0).Round(time.Millisecond))
	}
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: url, MaxConns: 16, Observer: obs})
	if err != nil {
		stopServer()
		return nil, "", nil, err
	}
	return db, how, func() { db.Close(); stopServer() }, nil
}

// openBuckets opens the source and destination fileblob directories.
func (h *host) openBuckets(ctx context.Context, teardown *[]func()) (src, dst transfer.Bucket, err error) {
	open := func(name string) (transfer.Bucket, error) {
		b, err := fileblob.OpenBucket(filepath.Join(h.dir, name), &fileblob.Options{CreateDir: true, Metadata: fileblob.MetadataDontWrite})
		if err != nil {
			return nil, fmt.Errorf("opening the %s bucket: %w", name, err)
		}
		*teardown = append(*teardown, func() { b.Close() })
		return gocloudblob.New(b), nil
	}
	if src, err = open("src"); err != nil {
		return nil, nil, err
	}
	if dst, err = open("dst"); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

// sourceSpec is the sample registry for cfg: transfertest's small one
// (nested paths, shared base layers, Docker and OCI, indexes, untagged
// images), with cfg.Repositories repositories.
func sourceSpec(cfg config) transfertest.Spec {
	spec := transfertest.SmallSpec(cfg.Seed)
	spec.Repositories = cfg.Repositories
	spec.Images = max(spec.Images, 6*cfg.Repositories)
	return spec
}

// ensureSource generates the sample registry unless an earlier run did,
// and lists its repositories.
func (h *host) ensureSource(ctx context.Context, src transfer.Bucket, layout transfer.Layout) ([]string, error) {
	done, err := transfertest.Exists(ctx, src, generatedMarker)
	if err != nil {
		return nil, err
	}
	if !done {
		t0 := time.Now()
		reg, err := transfertest.Generate(ctx, src, sourceSpec(h.cfg))
		if err != nil {
			return nil, fmt.Errorf("generating the source registry: %w", err)
		}
		if err := transfertest.WriteObject(ctx, src, generatedMarker, []byte("ok\n")); err != nil {
			return nil, err
		}
		tags, manifests, blobs, bytes := reg.Counts()
		h.say("source: generated %d repositories, %d tags, %d manifests, %d blobs (%s) in %s in %s",
			len(reg.Repositories), tags, manifests, blobs, transfer.FormatBytes(bytes), filepath.Join(h.dir, "src"), time.Since(t0).Round(time.Millisecond))
	}
	repos, err := transfer.NewLayoutReader(src, layout, transfer.RetryPolicy{}).Repositories(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the source registry: %w", err)
	}
	if !done {
		return repos, nil
	}
	h.say("source: %d repositories in %s (generated by an earlier run)", len(repos), filepath.Join(h.dir, "src"))
	return repos, nil
}

func randomSecret() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
