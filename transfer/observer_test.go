package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestClassifyRetry(t *testing.T) {
	for _, c := range []struct {
		err  error
		want transfer.RetryCause
	}{
		{&faultblob.Error{Status: 429}, transfer.RetryThrottled},
		{&faultblob.Error{Status: 408}, transfer.RetryTimeout},
		{&faultblob.Error{Status: 503}, transfer.RetryServerError},
		{io.ErrUnexpectedEOF, transfer.RetryTruncated},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), transfer.RetryConnection},
		{errors.New("something else"), transfer.RetryOther},
	} {
		if got := transfer.ClassifyRetry(c.err); got != c.want {
			t.Errorf("ClassifyRetry(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// events keeps what an Observer was told; safe for concurrent use.
type events struct {
	mu      sync.Mutex
	blobs   []transfer.BlobEvent
	retries []transfer.RetryEvent
	repos   []transfer.RepositoryEvent
	passes  []transfer.PassEvent
	// Each Start puts its name in the context; the names each Start found
	// there (its parent) and each End was given back.
	parents map[string]string
	ends    []string
}

type spanKey struct{}

func spanOf(ctx context.Context) string {
	s, _ := ctx.Value(spanKey{}).(string)
	return s
}

func (e *events) observer() transfer.Observer {
	add := func(f func()) {
		e.mu.Lock()
		defer e.mu.Unlock()
		f()
	}
	start := func(ctx context.Context, name string) context.Context {
		add(func() {
			if e.parents == nil {
				e.parents = map[string]string{}
			}
			e.parents[name] = spanOf(ctx)
		})
		return context.WithValue(ctx, spanKey{}, name)
	}
	end := func(ctx context.Context) { e.ends = append(e.ends, spanOf(ctx)) }
	return transfer.ObserverFuncs{
		OnBlobStart: func(ctx context.Context, ev transfer.BlobStartEvent) context.Context {
			return start(ctx, string(ev.Digest))
		},
		OnBlobEnd: func(ctx context.Context, ev transfer.BlobEvent) {
			add(func() { e.blobs = append(e.blobs, ev); end(ctx) })
		},
		OnRetried: func(_ context.Context, ev transfer.RetryEvent) { add(func() { e.retries = append(e.retries, ev) }) },
		OnRepositoryStart: func(ctx context.Context, ev transfer.RepositoryStartEvent) context.Context {
			return start(ctx, ev.Name)
		},
		OnRepositoryEnd: func(ctx context.Context, ev transfer.RepositoryEvent) {
			add(func() { e.repos = append(e.repos, ev); end(ctx) })
		},
		OnPassStart: func(ctx context.Context, ev transfer.PassStartEvent) context.Context {
			return start(ctx, ev.Pass.String())
		},
		OnPassEnd: func(ctx context.Context, ev transfer.PassEvent) {
			add(func() { e.passes = append(e.passes, ev); end(ctx) })
		},
	}
}

func TestObserverSeesBlobsRetriesRepositoriesAndPasses(t *testing.T) {
	ctx := context.Background()
	rawSrc, dst := memBucket(t), memBucket(t)
	spec := transfertest.SmallSpec(21)
	reg := generate(t, rawSrc, spec)
	// Every first read of an object is throttled once: each copy and each
	// source read is retried once.
	src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Inject: faultblob.FailFirst(1, faultblob.TooManyRequests, faultblob.OpRead)})
	retry := transfer.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	ev := &events{}
	obs := transfer.MultiObserver(nil, ev.observer())
	tr := mustNew(t, src, dst, transfer.Options{Retry: retry, Observer: obs})
	im := newImporter(t, src, tr, transfertest.NewMemSink(), transfer.ImportOptions{Retry: retry, Observer: obs, MaxTags: 3})

	rep, err := im.PreImport(ctx)
	if err != nil {
		t.Fatal(err)
	}

	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.passes) != 1 || ev.passes[0].Report != rep || ev.passes[0].Pass != transfer.PreImport || ev.passes[0].Err != nil {
		t.Fatalf("pass events %+v", ev.passes)
	}
	outcomes := map[transfer.RepositoryOutcome]int{}
	for _, r := range ev.repos {
		outcomes[r.Outcome]++
		if r.Pass != transfer.PreImport || r.Report.Duration <= 0 {
			t.Fatalf("repository event %+v", r)
		}
	}
	if outcomes[transfer.RepositoryImported]+outcomes[transfer.RepositoryTooLarge] != len(reg.Repositories) ||
		outcomes[transfer.RepositoryTooLarge] != len(rep.TooLarge) || outcomes[transfer.RepositoryTooLarge] == 0 {
		t.Fatalf("outcomes %v for %d repositories, %d too large", outcomes, len(reg.Repositories), len(rep.TooLarge))
	}
	var copied int64
	for _, b := range ev.blobs {
		if b.Err != nil || b.Result.Method() != "streamed" || b.Result.Attempts != 2 {
			t.Fatalf("blob event %+v", b)
		}
		copied += b.Result.Bytes
	}
	if int64(len(ev.blobs)) != rep.BlobsCopied || copied != rep.BytesCopied {
		t.Fatalf("%d blob events, %d bytes; report: %d blobs, %d bytes", len(ev.blobs), copied, rep.BlobsCopied, rep.BytesCopied)
	}
	ops := map[string]int{}
	for _, r := range ev.retries {
		if r.Cause != transfer.RetryThrottled || r.Attempt != 1 || r.Wait <= 0 || r.Err == nil {
			t.Fatalf("retry event %+v", r)
		}
		ops[r.Op]++
	}
	if ops["copy"] != len(ev.blobs) || ops["read"] == 0 {
		t.Fatalf("retries by operation %v, %d blobs", ops, len(ev.blobs))
	}

	// The contexts nest: pass > repository > blob (under the repository
	// that asked for it first), and every End got its own Start's.
	pass := transfer.PreImport.String()
	if p := ev.parents[pass]; p != "" {
		t.Fatalf("the pass started under %q", p)
	}
	repos := map[string]bool{}
	for _, r := range reg.Repositories {
		repos[r.Name] = true
		if p := ev.parents[r.Name]; p != pass {
			t.Fatalf("repository %s started under %q, want the pass", r.Name, p)
		}
	}
	for _, b := range ev.blobs {
		if p := ev.parents[string(b.Result.Digest)]; !repos[p] {
			t.Fatalf("blob %s started under %q, want a repository", b.Result.Digest, p)
		}
	}
	want := len(ev.blobs) + len(ev.repos) + len(ev.passes)
	if len(ev.ends) != want {
		t.Fatalf("%d Ends, want %d", len(ev.ends), want)
	}
	for _, name := range ev.ends {
		if _, ok := ev.parents[name]; !ok {
			t.Fatalf("an End got the context %q, not one a Start returned", name)
		}
	}
}

func TestObserverSeesFailures(t *testing.T) {
	ctx := context.Background()
	rawSrc, dst := memBucket(t), memBucket(t)
	reg := generate(t, rawSrc, transfertest.SmallSpec(22))
	victim := reg.Repositories[0].Layers[0]
	src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Inject: faultblob.OnKeys(victim.Encoded(),
		func(op faultblob.Op, _ string, _ int) faultblob.Fault {
			if op == faultblob.OpRead {
				return faultblob.CorruptRead
			}
			return faultblob.None
		})})
	ev := &events{}
	tr := mustNew(t, src, dst, transfer.Options{Observer: ev.observer()})
	im := newImporter(t, src, tr, transfertest.NewMemSink(), transfer.ImportOptions{Observer: ev.observer(), ContinueOnError: true})
	if _, err := im.PreImport(ctx); err == nil {
		t.Fatal("PreImport of a corrupt blob succeeded")
	}
	corrupt, failed := 0, 0
	for _, b := range ev.blobEvents() {
		if errors.Is(b.Err, transfer.ErrCorrupt) {
			corrupt++
		}
	}
	for _, r := range ev.repoEvents() {
		if r.Outcome == transfer.RepositoryFailed {
			failed++
		}
	}
	if passes := ev.passEvents(); corrupt != 1 || failed == 0 || len(passes) != 1 || passes[0].Err == nil {
		t.Fatalf("%d corrupt blobs, %d failed repositories, passes %+v", corrupt, failed, passes)
	}

	// A dry run reports its repositories as such.
	dry := newImporter(t, rawSrc, tr, transfertest.NewMemSink(), transfer.ImportOptions{Observer: ev.observer(), DryRun: true})
	if _, err := dry.PreImport(ctx, reg.Repositories[1].Name); err != nil {
		t.Fatal(err)
	}
	if repos := ev.repoEvents(); repos[len(repos)-1].Outcome != transfer.RepositoryDryRun {
		t.Fatalf("dry run: %+v", repos[len(repos)-1])
	}
	// A bad digest is a failed blob too.
	if _, err := tr.Transfer(ctx, "sha256:nope"); err == nil {
		t.Fatal("a bad digest transferred")
	}
	if blobs := ev.blobEvents(); !errors.Is(blobs[len(blobs)-1].Err, transfer.ErrInvalidDigest) {
		t.Fatalf("last blob event %+v", blobs[len(blobs)-1])
	}
	// Without an Observer nothing changes.
	plain := mustNew(t, rawSrc, memBucket(t), transfer.Options{})
	if _, err := plain.Transfer(ctx, reg.Repositories[1].Layers[0]); err != nil {
		t.Fatal(err)
	}
}

func (e *events) blobEvents() []transfer.BlobEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.blobs)
}

func (e *events) repoEvents() []transfer.RepositoryEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.repos)
}

func (e *events) passEvents() []transfer.PassEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.passes)
}
