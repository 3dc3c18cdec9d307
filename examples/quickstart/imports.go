package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// quickstartLeaseKey is the enqueuer's lease key.
const quickstartLeaseKey = "ferry-quickstart:enqueuer"

// importSummary is what migrateRegistry did.
type importSummary struct {
	repos, tags, manifests, blobs int
	bytes                         int64
	generated                     time.Duration

	imported, runs, peak int
	took                 time.Duration
	copied, copiedBytes  int64
	verified             int

	// The enqueuer, its store, lease and lease key (the dashboard of
	// -serve).
	enq      *enqueuer.Enqueuer
	store    enqueuer.Store
	locker   lease.Locker
	leaseKey string
}

// migrateRegistry generates a registry in srcDir and moves it to dstDir
// through the enqueuer, capacity repositories at a time. prefix, when set,
// namespaces the repositories in the enqueuer's store (for a database that
// outlives this run).
func migrateRegistry(ctx context.Context, out io.Writer, db *storage.DB, srcDir, dstDir, prefix string, capacity int) (importSummary, error) {
	var s importSummary
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	quiet := slog.New(slog.DiscardHandler)

	// Blobs are content-addressed: no metadata sidecar files needed.
	bucketOpts := &fileblob.Options{CreateDir: true, Metadata: fileblob.MetadataDontWrite}
	srcBlob, err := fileblob.OpenBucket(srcDir, bucketOpts)
	if err != nil {
		return s, err
	}
	defer srcBlob.Close()
	dstBlob, err := fileblob.OpenBucket(dstDir, bucketOpts)
	if err != nil {
		return s, err
	}
	defer dstBlob.Close()
	src, dst := gocloudblob.New(srcBlob), gocloudblob.New(dstBlob)

	t0 := time.Now()
	gen, err := transfertest.Generate(ctx, src, transfertest.SmallSpec(1))
	if err != nil {
		return s, fmt.Errorf("generating the registry: %w", err)
	}
	s.repos = len(gen.Repositories)
	s.tags, s.manifests, s.blobs, s.bytes = gen.Counts()
	s.generated = time.Since(t0)
	say("- registry: generated %d repositories, %d tags, %d manifests, %d blobs (%s) in the distribution layout in %s",
		s.repos, s.tags, s.manifests, s.blobs, transfer.FormatBytes(s.bytes), s.generated.Round(time.Millisecond))

	layout, err := transfer.NewLayout("")
	if err != nil {
		return s, err
	}
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		return s, err
	}
	im, err := transfer.NewImporter(src, tr, transfer.NewLayoutSink(dst, layout, transfer.RetryPolicy{}), transfer.ImportOptions{})
	if err != nil {
		return s, err
	}

	// The enqueuer's store and lease: Postgres when there is one.
	var store enqueuer.Store
	var locker lease.Locker
	where := "in-memory store and lease (enqueuertest, leasetest)"
	if db != nil {
		if store, err = enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{Logger: quiet}); err != nil {
			return s, err
		}
		locker = pglease.New(db, pglease.Options{Holder: "quickstart"})
		where = "Postgres store, pglease lease"
	} else {
		store = enqueuertest.NewStore(enqueuertest.StoreOptions{})
		locker = leasetest.NewLocker(leasetest.Options{Holder: "quickstart"})
	}
	for _, r := range gen.Repositories {
		if _, err := store.Add(ctx, enqueuer.NewRepository{Path: prefix + r.Name, TagCount: len(r.Tags)}); err != nil {
			return s, err
		}
	}

	// The registry side reports each outcome to the enqueuer's
	// notification handler, which asks for another run.
	poke := make(chan struct{}, 1)
	const secret = "quickstart"
	handler, err := enqueuer.NewHandler(enqueuer.HandlerOptions{
		Store:  store,
		Secret: secret,
		OnChange: func(context.Context, enqueuer.Repository) {
			select {
			case poke <- struct{}{}:
			default:
			}
		},
		Logger: quiet,
	})
	if err != nil {
		return s, err
	}
	passCtx, cancelPasses := context.WithCancel(ctx)
	reg := &localRegistry{ctx: passCtx, im: im, prefix: prefix, handler: handler, secret: secret, status: map[string]enqueuer.RegistryStatus{}}
	defer func() {
		cancelPasses()
		reg.wg.Wait()
	}()
	enq, err := enqueuer.New(enqueuer.Config{
		Store:    store,
		Registry: reg,
		Locker:   locker,
		LeaseKey: quickstartLeaseKey,
		Capacity: func(context.Context) int { return capacity },
		Strategy: enqueuer.ParallelLoop{},
		Logger:   quiet,
	})
	if err != nil {
		return s, err
	}
	s.enq, s.store, s.locker, s.leaseKey = enq, store, locker, quickstartLeaseKey
	say("- imports: %d repositories through the enqueuer, capacity %d, ParallelLoop strategy, %s", s.repos, capacity, where)

	// A job system would trigger the enqueuer on a schedule and after each
	// notification; here a loop does both.
	t0 = time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	p := &progress{out: out, interval: 0}
	lastDone := -1
	for {
		if _, err := enq.Run(ctx); err != nil && !errors.Is(err, lease.ErrHeld) {
			return s, fmt.Errorf("enqueuer run: %w", err)
		}
		s.runs++
		counts, err := countStates(ctx, store, prefix)
		if err != nil {
			return s, err
		}
		if err := reg.failure(); err != nil {
			return s, err
		}
		done := counts[enqueuer.StateImportDone]
		if done != lastDone {
			inProgress := counts[enqueuer.StatePreImporting] + counts[enqueuer.StatePreImportDone] + counts[enqueuer.StateImporting]
			p.line(true, "progress: %d/%d imported, %d in progress, %d waiting, %s", done, s.repos, inProgress,
				counts[enqueuer.StateDefault], time.Since(t0).Round(time.Millisecond))
			lastDone = done
		}
		if skipped := counts[enqueuer.StateImportSkipped]; skipped > 0 {
			// Only after failed imports were retried MaxRetries times.
			return s, fmt.Errorf("%d repositories were skipped: %v", skipped, counts)
		}
		if done == s.repos {
			break
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-poke:
		case <-tick.C:
		}
	}
	s.took = time.Since(t0)
	s.imported = s.repos
	s.peak, s.copied, s.copiedBytes = reg.totals()

	// Check the destination: every blob hashes to its digest, and it holds
	// exactly what the source's tags reach.
	if s.verified, err = transfertest.CheckBlobs(ctx, dst, layout); err != nil {
		return s, fmt.Errorf("verifying the destination: %w", err)
	}
	got, err := transfertest.ReadLayoutState(ctx, dst, layout)
	if err != nil {
		return s, err
	}
	if diff := transfertest.Diff(gen.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport}), got); diff != "" {
		return s, fmt.Errorf("the destination differs from the source:\n%s", diff)
	}
	say("- imports: %d/%d done in %s, at most %d at once; %d blobs (%s) copied; destination verified: %d blob objects match their digests and the source's tags",
		s.imported, s.repos, s.took.Round(time.Millisecond), s.peak, s.copied, transfer.FormatBytes(s.copiedBytes), s.verified)
	return s, nil
}

// countStates counts this run's repositories (those under prefix) by state.
func countStates(ctx context.Context, store enqueuer.Store, prefix string) (map[enqueuer.State]int, error) {
	counts := map[enqueuer.State]int{}
	for _, st := range enqueuer.States {
		repos, err := store.List(storage.UsePrimary(ctx), enqueuer.ListOptions{State: st, Limit: 100_000})
		if err != nil {
			return nil, err
		}
		for _, r := range repos {
			if strings.HasPrefix(r.Path, prefix) {
				counts[st]++
			}
		}
	}
	return counts, nil
}

// localRegistry is the registry side, in process: an
// enqueuer.RegistryClient whose imports are the transfer importer's two
// passes, run in the background. Each outcome goes to the enqueuer's
// notification Handler exactly as the registry would PUT it over HTTP.
type localRegistry struct {
	ctx     context.Context // the passes run under it
	im      *transfer.Importer
	prefix  string
	handler http.Handler
	secret  string
	wg      sync.WaitGroup

	mu                 sync.Mutex
	status             map[string]enqueuer.RegistryStatus
	running, peak      int
	copied, copiedSize int64
	err                error
}

// StartPreImport implements enqueuer.RegistryClient.
func (r *localRegistry) StartPreImport(_ context.Context, path string) error {
	return r.start(path, transfer.PreImport)
}

// StartImport implements enqueuer.RegistryClient.
func (r *localRegistry) StartImport(_ context.Context, path string) error {
	return r.start(path, transfer.FinalImport)
}

// ImportStatus implements enqueuer.RegistryClient.
func (r *localRegistry) ImportStatus(_ context.Context, path string) (enqueuer.ImportStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return enqueuer.ImportStatus{Status: r.status[path]}, nil
}

// CancelImport implements enqueuer.RegistryClient. Imports here are short,
// so there is nothing to cancel; the enqueuer only asks for stale ones.
func (r *localRegistry) CancelImport(context.Context, string) error { return nil }

func (r *localRegistry) start(path string, p transfer.Pass) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.status[path]; st == enqueuer.StatusPreImportInProgress || st == enqueuer.StatusImportInProgress {
		return &enqueuer.RegistryError{Op: p.String(), Path: path, StatusCode: http.StatusConflict, Err: enqueuer.ErrImportInProgress}
	}
	r.status[path] = enqueuer.StatusPreImportInProgress
	if p == transfer.FinalImport {
		r.status[path] = enqueuer.StatusImportInProgress
	}
	r.running++
	r.peak = max(r.peak, r.running)
	r.wg.Add(1)
	go r.run(path, p)
	return nil
}

func (r *localRegistry) run(path string, p transfer.Pass) {
	defer r.wg.Done()
	pass := r.im.PreImport
	if p == transfer.FinalImport {
		pass = r.im.Import
	}
	rep, err := pass(r.ctx, strings.TrimPrefix(path, r.prefix))
	status := map[bool]string{true: enqueuer.NotifyPreImportComplete, false: enqueuer.NotifyPreImportFailed}[err == nil]
	regStatus := map[bool]enqueuer.RegistryStatus{true: enqueuer.StatusPreImportComplete, false: enqueuer.StatusPreImportFailed}[err == nil]
	if p == transfer.FinalImport {
		status = map[bool]string{true: enqueuer.NotifyImportComplete, false: enqueuer.NotifyImportFailed}[err == nil]
		regStatus = map[bool]enqueuer.RegistryStatus{true: enqueuer.StatusImportComplete, false: enqueuer.StatusImportFailed}[err == nil]
	}
	r.mu.Lock()
	r.running--
	r.status[path] = regStatus
	if rep != nil {
		r.copied += rep.BlobsCopied
		r.copiedSize += rep.BytesCopied
	}
	r.mu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	if err := r.notify(path, status, reason); err != nil {
		r.mu.Lock()
		r.err = errors.Join(r.err, err)
		r.mu.Unlock()
	}
}

// notify sends the outcome to the handler in process.
func (r *localRegistry) notify(path, status, reason string) error {
	body, err := json.Marshal(map[string]string{"status": status, "reason": reason})
	if err != nil {
		return err
	}
	req := httptest.NewRequestWithContext(r.ctx, http.MethodPut, "/internal/registry/repositories/"+path+"/migration/status", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.secret)
	rec := httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("notification %s for %s: %d %s", status, path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return nil
}

func (r *localRegistry) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *localRegistry) totals() (peak int, copied, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak, r.copied, r.copiedSize
}
