package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// ErrVerification means the import finished but the destination or the
// sink does not hold exactly what was expected; Result.Verification says
// what differs.
var ErrVerification = errors.New("scale: verification failed")

// maxEnqueuerErrors ends a run whose enqueuer fails this many times in a
// row.
const maxEnqueuerErrors = 20

// Run imports the workload w into a new destination through the enqueuer
// and the transfer importer, as described in the package documentation,
// and checks the result. It returns the Result even when the verification
// fails (with an error wrapping ErrVerification).
func Run(ctx context.Context, w *Workload, opts Options) (*Result, error) {
	if w == nil || w.Registry == nil || w.Dir == "" {
		return nil, errors.New("scale.Run: a prepared Workload is required")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	goroutinesStart := runtime.NumGoroutine()
	e, err := newEnv(w, opts)
	if err != nil {
		return nil, err
	}
	defer e.close()

	start := time.Now()
	trk := newTracker(start, opts.Capacity, opts.Concurrency, w.Registry.Layout)
	e.trk = trk
	repos, err := e.discover(ctx)
	if err != nil {
		return nil, err
	}
	discovered := time.Since(start)

	var baseline *Baseline
	var baselineErr error
	var bg sync.WaitGroup
	if opts.BaselineRepositories > 0 {
		bg.Go(func() { baseline, baselineErr = runBaseline(ctx, w, opts, repos) })
	}

	// The progress loop samples the ETA every second and prints every
	// ProgressInterval.
	var peakGoroutines atomic.Int64
	progCtx, stopProgress := context.WithCancel(ctx)
	var progress sync.WaitGroup
	progress.Go(func() { e.progressLoop(progCtx, &peakGoroutines) })

	runs, loopErr := e.drive(ctx)
	wall := time.Since(start)
	if g := int64(runtime.NumGoroutine()); g > peakGoroutines.Load() {
		peakGoroutines.Store(g)
	}
	stopProgress()
	progress.Wait()
	final := trk.snapshot(time.Now())
	if err := e.registry.Close(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	bg.Wait()
	if loopErr != nil {
		return nil, loopErr
	}
	if e.opts.Progress != nil {
		fmt.Fprintln(e.opts.Progress, progressLine(final, true))
	}

	res := &Result{
		Spec: w.Spec, Options: opts, Wall: wall, Discovery: discovered, EnqueuerRuns: runs,
		Repositories: len(repos), BlobTransfers: final.BlobsDone, BlobsCopied: final.BlobsCopied,
		BytesCopied: final.BytesCopied, BlobRetries: final.Retries,
		SourceOps: totalOps(e.srcStats), DestinationOps: totalOps(e.dstStats),
		FaultsInjected: e.srcStats.Faults() + e.dstStats.Faults(),
		Baseline:       baseline, BaselineErr: baselineErr,
	}
	if baseline != nil {
		baseline.Estimated = baseline.PerBlob * time.Duration(res.BlobTransfers)
	}
	if err := e.settle(ctx, res, repos); err != nil {
		return nil, err
	}
	res.PerRepository, res.PassFailures = trk.timings(), trk.failures()
	shares := []float64{0.10, 0.50, 0.90}
	res.ETA = trk.etaPoints(wall, shares)
	res.Forecast = trk.forecastPoints(wall, shares)
	res.ForecastByRepositories = trk.forecastPointsByRepositories(wall, shares)
	res.Timeline.Started, res.Timeline.Wall, res.Timeline.Capacity = start, wall, opts.Capacity
	res.Timeline.Samples = trk.exportSamples()
	if res.Wall > 0 {
		res.BlobsPerSecond = float64(res.BlobsCopied) / res.Wall.Seconds()
	}

	// Verification reads the destination directory itself; the buckets
	// (and the fault injector's per-key state) can go.
	e.releaseBuckets()
	want := w.Registry.Expect(transfertest.ExpectOptions{MaxTags: opts.MaxTags, Pass: transfer.FinalImport})
	got := e.mem.State()
	_, res.Manifests, res.Tags = got.Counts()
	res.Verification, err = verify(ctx, e.dstDir, w.Registry.Layout, want, got)
	if err != nil {
		return nil, err
	}

	e.close()
	res.GoroutinesStart, res.GoroutinesPeak = goroutinesStart, int(peakGoroutines.Load())
	res.GoroutinesEnd = settledGoroutines(goroutinesStart)
	res.PeakRSS, _ = PeakRSS()
	if !res.Verification.OK() {
		return res, fmt.Errorf("%w: %s", ErrVerification, res.Verification.Summary())
	}
	return res, nil
}

// env is everything one run wires together.
type env struct {
	w    *Workload
	opts Options

	srcRaw, dstRaw *gocloudblob.Bucket
	src, dst       *faultblob.Bucket
	srcStats       *faultblob.Stats
	dstStats       *faultblob.Stats
	dstDir         string
	removeDst      bool

	mem      *transfertest.MemSink
	importer *transfer.Importer
	store    enqueuer.Store
	registry *Registry
	enq      *enqueuer.Enqueuer
	// sched runs the enqueuer; set by drive before the first run.
	sched *enqueuer.Scheduler
	// trk is set before the first import starts; the importer's and the
	// registry's callbacks report to it.
	trk *tracker

	closeOnce sync.Once
}

func newEnv(w *Workload, opts Options) (_ *env, err error) {
	e := &env{w: w, opts: opts}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.srcRaw, err = OpenDir(w.Dir); err != nil {
		return nil, err
	}
	e.dstDir = opts.DestinationDir
	if e.dstDir == "" {
		if e.dstDir, err = os.MkdirTemp(scratchDir(), "ferry-scale-dst-"); err != nil {
			return nil, fmt.Errorf("scale: destination: %w", err)
		}
		e.removeDst = !opts.KeepDestination
	} else if entries, err := os.ReadDir(e.dstDir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("scale: destination %s is not empty", e.dstDir)
	}
	if e.dstRaw, err = OpenDir(e.dstDir); err != nil {
		return nil, err
	}
	// The source's injector also reports tag reads to the tracker, which
	// follows each repository's progress by them.
	srcFaults := faultOptions(opts, 0)
	inject := srcFaults.Inject
	srcFaults.Inject = func(op faultblob.Op, key string, call int) faultblob.Fault {
		if op == faultblob.OpRead && e.trk != nil {
			e.trk.observeKey(key, time.Now())
		}
		if inject == nil {
			return faultblob.None
		}
		return inject(op, key, call)
	}
	e.src, e.srcStats = faultblob.Wrap(e.srcRaw, srcFaults)
	e.dst, e.dstStats = faultblob.Wrap(e.dstRaw, faultOptions(opts, 1))

	e.mem = transfertest.NewMemSink()
	// Retries of injected 503s are expected; only errors are worth a line.
	tr, err := transfer.New(e.src, e.dst, transfer.Options{Root: w.Spec.Root, BufferSize: opts.BufferSize, Logger: atLeast(opts.Logger, slog.LevelError)})
	if err != nil {
		return nil, err
	}
	e.importer, err = transfer.NewImporter(e.src, tr, NewLatencySink(e.mem, opts.SinkLatency), transfer.ImportOptions{
		Root:                  w.Spec.Root,
		MaxTags:               opts.MaxTags,
		RepositoryConcurrency: 1,
		Concurrency:           opts.Concurrency,
		Logger:                opts.Logger,
		Progress:              e.onProgress,
	})
	if err != nil {
		return nil, err
	}

	e.store = opts.Store
	if e.store == nil {
		e.store = enqueuertest.NewStore(enqueuertest.StoreOptions{})
	}
	locker := opts.Locker
	if locker == nil {
		locker = leasetest.NewLocker(leasetest.Options{Holder: "ferry-scale"})
	}
	secret := randomHex(16)
	leaseKey := opts.LeaseKey
	if leaseKey == "" {
		leaseKey = "ferry-scale:" + secret[:12]
	}
	handler, err := enqueuer.NewHandler(enqueuer.HandlerOptions{
		Store:    e.store,
		Secret:   secret,
		OnChange: func(context.Context, enqueuer.Repository) { e.sched.Kick() },
		Logger:   opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	e.registry, err = NewRegistry(RegistryOptions{
		Pass:     e.pass,
		Notify:   handlerNotifier(handler, secret),
		Capacity: opts.Capacity,
		Progress: func(path string) *enqueuer.ImportProgress { return e.trk.progress(path) },
		Logger:   opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	e.enq, err = enqueuer.New(enqueuer.Config{
		Store:        e.store,
		Registry:     e.registry,
		Locker:       locker,
		LeaseKey:     leaseKey,
		Capacity:     func(context.Context) int { return opts.Capacity },
		MaxTagsCount: opts.MaxTags,
		MaxRetries:   opts.MaxRetries,
		Strategy:     enqueuer.ParallelLoop{},
		Logger:       opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	e.closeOnce.Do(func() {
		if e.registry != nil {
			_ = e.registry.Close(context.Background())
		}
		e.releaseBuckets()
		if e.removeDst {
			_ = os.RemoveAll(e.dstDir)
		}
	})
}

// releaseBuckets closes the buckets and drops every reference to them.
// Call it only once no import runs.
func (e *env) releaseBuckets() {
	for _, b := range []*gocloudblob.Bucket{e.srcRaw, e.dstRaw} {
		if b != nil {
			_ = b.Blob().Close()
		}
	}
	e.src, e.dst, e.srcRaw, e.dstRaw, e.importer = nil, nil, nil, nil, nil
}

func faultOptions(opts Options, salt uint64) faultblob.Options {
	fo := faultblob.Options{Latency: opts.Latency, SlowReadDelay: max(10*opts.Latency, 10*time.Millisecond)}
	var injs []faultblob.Injector
	if opts.FailureRate > 0 {
		injs = append(injs, faultblob.Random(opts.FaultSeed+salt, opts.FailureRate, faultblob.Unavailable))
	}
	if opts.SlowReadRate > 0 {
		injs = append(injs, faultblob.Random(opts.FaultSeed+salt+1000, opts.SlowReadRate, faultblob.SlowRead, faultblob.OpRead))
	}
	if len(injs) > 0 {
		fo.Inject = faultblob.Chain(injs...)
	}
	return fo
}

func totalOps(s *faultblob.Stats) int64 {
	var n int64
	for _, op := range []faultblob.Op{faultblob.OpAttributes, faultblob.OpList, faultblob.OpRead, faultblob.OpWrite, faultblob.OpDelete} {
		n += s.Ops(op)
	}
	return n
}

// handlerNotifier delivers notifications to the enqueuer's Handler in
// process, as the registry's HTTP request would.
func handlerNotifier(h http.Handler, secret string) Notifier {
	return func(ctx context.Context, repo, status, reason string) error {
		body, err := json.Marshal(map[string]string{"status": status, "reason": reason})
		if err != nil {
			return err
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPut,
			"/internal/registry/repositories/"+repo+"/migration/status", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("scale: notification %s of %s: HTTP %d: %s", status, repo, rec.Code, bytes.TrimSpace(rec.Body.Bytes()))
		}
		return nil
	}
}

// scratchDir is where transient buckets go: /dev/shm when it exists, a
// tmpfs, because creating and removing a hundred thousand small files on a
// disk can take minutes; else os.TempDir().
func scratchDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".ferry-scale-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// atLeast returns l without its records below min.
func atLeast(l *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(minLevel{Handler: l.Handler(), min: min})
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
