package harness

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// testDivisor makes the integration test's workload about 1/50 of the
// seed's.
const testDivisor = 50

// The seed's scenario at 1/50 of the objects and a few milliseconds per
// operation: everything imported through the enqueuer and verified, the
// largest repositories rejected by the tag policy, injected 503s retried,
// no goroutine left behind. It asserts correctness, never timing.
func TestScaledImport(t *testing.T) {
	if testing.Short() {
		t.Skip("imports a few thousand objects")
	}
	ctx := context.Background()
	w, err := Prepare(ctx, ScaledSpec(7, testDivisor), WorkloadOptions{})
	require.NoError(t, err)
	reg := w.Registry
	require.GreaterOrEqual(t, len(reg.Repositories), 20)

	// Reject the two largest repositories by tag count.
	counts := make([]int, 0, len(reg.Repositories))
	for _, r := range reg.Repositories {
		counts = append(counts, len(r.Tags))
	}
	slices.Sort(counts)
	maxTags := counts[len(counts)-3]
	wantRejected := reg.TooLarge(maxTags)
	require.NotEmpty(t, wantRejected)

	res, err := Run(ctx, w, Options{
		Latency:              2 * time.Millisecond,
		SinkLatency:          200 * time.Microsecond,
		FailureRate:          0.02,
		SlowReadRate:         0.01,
		Capacity:             4,
		Concurrency:          16,
		MaxTags:              maxTags,
		Tick:                 100 * time.Millisecond,
		BaselineRepositories: 1,
		Progress:             io.Discard,
		Logger:               testLogger(t),
	})
	require.NoError(t, err)
	t.Logf("%d repositories, %d blobs copied in %s; %d faults injected, %d blob retries; goroutines %d/%d/%d",
		res.Repositories, res.BlobsCopied, res.Wall, res.FaultsInjected, res.BlobRetries,
		res.GoroutinesStart, res.GoroutinesPeak, res.GoroutinesEnd)

	// Every repository was imported or rejected by the policy.
	require.Equal(t, len(reg.Repositories), res.Repositories)
	var rejected []string
	for _, r := range res.Rejected {
		rejected = append(rejected, r.Path)
	}
	slices.Sort(rejected)
	require.Equal(t, wantRejected, rejected)
	require.Empty(t, res.Failed)
	require.Equal(t, res.Repositories-len(wantRejected), res.Imported)
	require.Len(t, res.PerRepository, res.Imported)

	// Nothing lost or half-written, and the sink holds exactly what the
	// tags reach.
	v := res.Verification
	require.True(t, v.OK(), v.Summary())
	require.Positive(t, v.Expected)
	require.Equal(t, v.Expected, v.Objects)
	want := reg.Expect(transfertest.ExpectOptions{MaxTags: maxTags, Pass: transfer.FinalImport})
	_, manifests, tags := want.Counts()
	require.Equal(t, manifests, res.Manifests)
	require.Equal(t, tags, res.Tags)
	require.GreaterOrEqual(t, res.BlobsCopied, int64(v.Expected))

	// The faults happened and were survived.
	require.Positive(t, res.FaultsInjected)
	require.Positive(t, res.BlobRetries)
	require.Zero(t, res.PassFailures, "every fault is absorbed by retries of single operations")

	// The ETA was evaluated against the real end (how many points depends
	// on how long the run took), and the report renders.
	for _, p := range res.ETA {
		require.Positive(t, p.Actual)
		require.Positive(t, p.At)
	}
	require.NotNil(t, res.Baseline, "baseline: %v", res.BaselineErr)
	require.Positive(t, res.Baseline.Blobs)
	require.Len(t, res.BenchLines(), 9)
	res.WriteReport(io.Discard)

	// No goroutine outlives the run.
	require.LessOrEqual(t, res.GoroutinesEnd, res.GoroutinesStart)
	require.Positive(t, res.PeakRSS)
}

// A workload is generated once, then found in the cache; a directory
// without the completion marker is never used.
func TestPrepareCaches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	spec := transfertest.SmallSpec(3)
	first, err := Prepare(ctx, spec, WorkloadOptions{CacheDir: dir})
	require.NoError(t, err)
	require.False(t, first.Cached)
	require.Equal(t, filepath.Join(dir, CacheKey(spec), bucketDir), first.Dir)

	again, err := Prepare(ctx, spec, WorkloadOptions{CacheDir: dir})
	require.NoError(t, err)
	require.True(t, again.Cached)
	require.Equal(t, first.Registry.Repositories, again.Registry.Repositories)
	require.Equal(t, first.Registry.Blobs, again.Registry.Blobs)
	n, err := transfertest.CheckBlobs(ctx, mustOpen(t, again.Dir), again.Registry.Layout)
	require.NoError(t, err)
	require.Equal(t, len(again.Registry.Blobs), n)

	// Another seed is another cache entry.
	other := spec
	other.Seed++
	require.NotEqual(t, CacheKey(spec), CacheKey(other))
	// How fast it is written does not change what is written.
	faster := spec
	faster.Concurrency *= 2
	require.Equal(t, CacheKey(spec), CacheKey(faster))

	// An interrupted generation (no marker) is generated again.
	require.NoError(t, os.Remove(filepath.Join(dir, CacheKey(spec), completeMarker)))
	regen, err := Prepare(ctx, spec, WorkloadOptions{CacheDir: dir})
	require.NoError(t, err)
	require.False(t, regen.Cached)
	require.Equal(t, first.Registry.Blobs, regen.Registry.Blobs)
	left, err := filepath.Glob(filepath.Join(dir, "*.partial-*"))
	require.NoError(t, err)
	require.Empty(t, left)
}

func TestScaledSpec(t *testing.T) {
	full := SeedSpec(1)
	require.Equal(t, full, ScaledSpec(1, 1))
	small := ScaledSpec(1, 50)
	require.Equal(t, full.Images/50, small.Images)
	require.Equal(t, full.Repositories*5/50, small.Repositories)
	third := ScaledSpec(1, 3)
	require.Equal(t, full.Repositories, third.Repositories)
	require.Equal(t, full.BaseImages, third.BaseImages)
}

func TestRunRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	_, err := Run(ctx, nil, Options{})
	require.Error(t, err)
	w := &Workload{Dir: t.TempDir(), Registry: &transfertest.Registry{}}
	_, err = Run(ctx, w, Options{Capacity: -1})
	require.ErrorContains(t, err, "negative")
	_, err = Run(ctx, w, Options{FailureRate: 1})
	require.ErrorContains(t, err, "FailureRate")
	dst := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dst, "x"), nil, 0o644))
	_, err = Run(ctx, w, Options{DestinationDir: dst})
	require.ErrorContains(t, err, "not empty")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func mustOpen(t *testing.T, dir string) *gocloudblob.Bucket {
	t.Helper()
	b, err := OpenDir(dir)
	require.NoError(t, err)
	t.Cleanup(func() { b.Blob().Close() })
	return b
}
