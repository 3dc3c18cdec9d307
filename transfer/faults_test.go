package transfer_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
)

// A source that answers 503 to a third of all calls and cuts reads short,
// and a destination that throttles and fails uploads on commit: the import
// still ends exact, with every landed blob verified.
func TestImportSurvivesFlakyStorage(t *testing.T) {
	ctx := context.Background()
	rawSrc, rawDst := memBucket(t), memBucket(t)
	reg := generate(t, rawSrc, transfertest.SmallSpec(9))
	src, srcStats := faultblob.Wrap(rawSrc, faultblob.Options{Inject: faultblob.Chain(
		faultblob.Random(1, 0.3, faultblob.Unavailable),
		faultblob.Random(2, 0.2, faultblob.TruncateRead, faultblob.OpRead),
		faultblob.Random(3, 0.2, faultblob.ResetRead, faultblob.OpRead),
	)})
	dst, dstStats := faultblob.Wrap(rawDst, faultblob.Options{Inject: faultblob.Chain(
		faultblob.Random(4, 0.3, faultblob.Unavailable, faultblob.OpWrite),
		faultblob.Random(5, 0.2, faultblob.TooManyRequests, faultblob.OpAttributes),
	)})
	retry := transfer.RetryPolicy{MaxAttempts: 12, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{Retry: retry, BufferSize: 8 << 10}), sink,
		transfer.ImportOptions{Retry: retry, IncludeUntagged: true})
	if _, err := im.PreImport(ctx); err != nil {
		t.Fatalf("PreImport: %v", err)
	}
	if _, err := im.Import(ctx); err != nil {
		t.Fatalf("Import: %v", err)
	}
	want := reg.Expect(transfertest.ExpectOptions{IncludeUntagged: true, Pass: transfer.FinalImport})
	requireState(t, want, sink.State())
	requireDestinationBlobs(t, rawDst, reg.Layout, wantBlobs(want))
	if srcStats.Faults() == 0 || dstStats.Faults() == 0 {
		t.Fatalf("no faults injected (source %d, destination %d)", srcStats.Faults(), dstStats.Faults())
	}
	t.Logf("survived %d source and %d destination faults", srcStats.Faults(), dstStats.Faults())
}

// One layer cannot be read at all: the repositories that need it fail with
// a clear error and keep nothing that references it; everything else is
// imported; a later run without the fault completes the job.
func TestImportPermanentFaultLeavesNothingHalfWritten(t *testing.T) {
	ctx := context.Background()
	rawSrc, dst := memBucket(t), memBucket(t)
	reg := generate(t, rawSrc, transfertest.SmallSpec(10))
	// A layer of the first repository's newest tagged image.
	first := reg.Repositories[0]
	var victim digest.Digest
	for _, m := range first.Manifests {
		if m.Digest == first.Tags[len(first.Tags)-1].Digest && len(m.Layers) > 0 {
			victim = m.Layers[len(m.Layers)-1]
		}
	}
	if victim == "" {
		victim = first.Layers[0]
	}
	var broken atomic.Bool
	broken.Store(true)
	src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Inject: faultblob.OnKeys(victim.Encoded(),
		func(op faultblob.Op, key string, call int) faultblob.Fault {
			if broken.Load() && op == faultblob.OpRead {
				return faultblob.ResetRead
			}
			return faultblob.None
		})})
	retry := transfer.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond}
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{Retry: retry}), sink,
		transfer.ImportOptions{Retry: retry, ContinueOnError: true})
	rep, err := im.Import(ctx)
	if err == nil || !strings.Contains(err.Error(), string(victim)) {
		t.Fatalf("err = %v, want a failure naming %s", err, victim)
	}
	state := sink.State()
	for _, rr := range rep.Failed() {
		for _, m := range state[rr.Name].Manifests {
			if man := sink.Manifest(rr.Name, m); man != nil {
				for _, b := range man.Blobs() {
					if b.Digest == victim {
						t.Fatalf("%s: manifest %s was put although its layer failed", rr.Name, m)
					}
				}
			}
		}
	}
	if ok, _ := transfertest.Exists(ctx, dst, reg.Layout.BlobKey(victim)); ok {
		t.Fatal("the unreadable layer landed at the destination")
	}
	if _, err := transfertest.CheckBlobs(ctx, dst, reg.Layout); err != nil {
		t.Fatal(err)
	}

	broken.Store(false)
	if _, err := im.Import(ctx); err != nil {
		t.Fatalf("Import after the fault cleared: %v", err)
	}
	want := reg.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport})
	requireState(t, want, sink.State())
	requireDestinationBlobs(t, dst, reg.Layout, wantBlobs(want))
}

func TestImportSinkFailureIsReported(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(11))
	victim := reg.Repositories[1].Name
	sink := transfertest.NewMemSink()
	sinkDown := errors.New("database is down")
	sink.FailWith(func(method, repo string) error {
		if method == "PutManifest" && repo == victim {
			return sinkDown
		}
		return nil
	})
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{ContinueOnError: true})
	rep, err := im.Import(ctx)
	if !errors.Is(err, sinkDown) || len(rep.Failed()) != 1 || rep.Failed()[0].Name != victim {
		t.Fatalf("err = %v, failed = %v; want only %s failing with the sink error", err, rep.Failed(), victim)
	}
	want := reg.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport})
	got := sink.State()
	if len(got[victim].Manifests) != 0 || len(got[victim].Tags) != 0 {
		t.Fatalf("%s has manifests or tags after PutManifest failed", victim)
	}
	delete(want, victim)
	delete(got, victim)
	requireState(t, want, got)
}

// Cancelling the context stops the import promptly, leaves no goroutines
// behind and no partial blob at the destination.
func TestImportCancellation(t *testing.T) {
	rawSrc, rawDst := memBucket(t), memBucket(t)
	reg := generate(t, rawSrc, transfertest.SmallSpec(12))
	src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Latency: 5 * time.Millisecond})
	dst, _ := faultblob.Wrap(rawDst, faultblob.Options{Latency: 5 * time.Millisecond})
	baseline := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var blobs atomic.Int32
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{
		Concurrency: 8,
		Progress: func(p transfer.Progress) {
			if p.Kind == transfer.EventBlobDone && blobs.Add(1) == 5 {
				cancel()
			}
		},
	})
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := im.Import(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		t.Logf("stopped %s after the import began", time.Since(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("Import did not return after its context was cancelled")
	}
	goroutinesSettle(t, baseline)
	if _, err := transfertest.CheckBlobs(context.Background(), rawDst, reg.Layout); err != nil {
		t.Fatal(err)
	}
	// What was imported is consistent (MemSink rejects out-of-order
	// calls), and finishing the job later gives the exact result.
	im2 := newImporter(t, rawSrc, mustNew(t, rawSrc, rawDst, transfer.Options{}), sink, transfer.ImportOptions{})
	if _, err := im2.Import(context.Background()); err != nil {
		t.Fatal(err)
	}
	requireState(t, reg.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport}), sink.State())
}
