package transfer_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var generate = transfertest.MustGenerate

func newImporter(t testing.TB, src transfer.Bucket, tr transfer.Transferer, sink transfer.Sink, opts transfer.ImportOptions) *transfer.Importer {
	t.Helper()
	im, err := transfer.NewImporter(src, tr, sink, opts)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

var requireState = transfertest.RequireState

// wantBlobs is the set of blobs the expected state links anywhere.
func wantBlobs(s transfertest.State) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, r := range s {
		for _, d := range r.Blobs {
			out[d] = true
		}
	}
	return out
}

// requireDestinationBlobs checks that dst holds exactly the wanted blobs,
// each verified against its digest.
func requireDestinationBlobs(t testing.TB, dst transfer.Bucket, l transfer.Layout, want map[digest.Digest]bool) {
	t.Helper()
	n, err := transfertest.CheckBlobs(context.Background(), dst, l)
	if err != nil {
		t.Fatalf("destination blob check: %v", err)
	}
	if n != len(want) {
		t.Fatalf("destination holds %d blobs, want %d", n, len(want))
	}
	for d := range want {
		if ok, _ := transfertest.Exists(context.Background(), dst, l.BlobKey(d)); !ok {
			t.Fatalf("blob %s missing at the destination", d)
		}
	}
}

func TestImportTwoPassesAreExactAndIdempotent(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(1))
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{})

	pre := reg.Expect(transfertest.ExpectOptions{Pass: transfer.PreImport})
	for run := 1; run <= 2; run++ {
		rep, err := im.PreImport(ctx)
		if err != nil {
			t.Fatalf("PreImport run %d: %v", run, err)
		}
		requireState(t, pre, sink.State())
		if rep.Tags != 0 {
			t.Fatalf("PreImport reported %d tags", rep.Tags)
		}
		if run == 2 && (rep.BlobsCopied != 0 || rep.Manifests != 0) {
			t.Fatalf("second PreImport copied %d blobs and put %d manifests, want none", rep.BlobsCopied, rep.Manifests)
		}
	}
	if sink.Calls("Tag") != 0 {
		t.Fatalf("PreImport tagged %d times", sink.Calls("Tag"))
	}

	final := reg.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport})
	putsBefore := sink.Calls("PutManifest")
	for run := 1; run <= 2; run++ {
		rep, err := im.Import(ctx)
		if err != nil {
			t.Fatalf("Import run %d: %v", run, err)
		}
		requireState(t, final, sink.State())
		_, _, tags := final.Counts()
		if rep.Tags != tags || rep.BlobsCopied != 0 || rep.Manifests != 0 {
			t.Fatalf("Import run %d after PreImport: tags %d (want %d), blobs copied %d, manifests put %d (want 0, 0)",
				run, rep.Tags, tags, rep.BlobsCopied, rep.Manifests)
		}
	}
	if got := sink.Calls("PutManifest"); got != putsBefore {
		t.Fatalf("final passes put %d more manifests, want 0", got-putsBefore)
	}
	requireDestinationBlobs(t, dst, reg.Layout, wantBlobs(final))
}

// With LayoutSink and IncludeUntagged the import is a full registry copy:
// the destination layout reads back exactly like the source.
func TestImportFullCopyIntoLayoutSink(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := fileBucket(t, srcDir), fileBucket(t, dstDir)
	reg := generate(t, src, transfertest.SmallSpec(2))
	sink := transfer.NewLayoutSink(dst, reg.Layout, transfer.RetryPolicy{})
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{IncludeUntagged: true, IncludeOrphanLayers: true})
	if _, err := im.PreImport(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Import(ctx); err != nil {
		t.Fatal(err)
	}
	transfertest.RequireSameLayout(t, src, dst, reg.Layout)
	all := map[digest.Digest]bool{}
	for d := range reg.Blobs {
		all[d] = true
	}
	requireDestinationBlobs(t, dst, reg.Layout, all)
}

func TestImportTagPolicies(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(3))
	maxTags := 0
	for _, r := range reg.Repositories {
		maxTags = max(maxTags, len(r.Tags))
	}
	limit := maxTags - 1
	for _, tc := range []struct {
		name    string
		policy  transfer.TagPolicy
		maxTags int
	}{
		{"All", transfer.AllTags(), 0},
		{"MostRecent3", transfer.MostRecentTags(3), 0},
		{"Semver10", transfer.SemverTags(10), 0},
		{"Semver2MaxTags", transfer.SemverTags(2), limit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := memBucket(t)
			sink := transfertest.NewMemSink()
			im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink,
				transfer.ImportOptions{Tags: tc.policy, MaxTags: tc.maxTags})
			rep, err := im.Import(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := reg.Expect(transfertest.ExpectOptions{Tags: tc.policy, MaxTags: tc.maxTags, Pass: transfer.FinalImport})
			requireState(t, want, sink.State())
			var tooLarge []string
			for _, e := range rep.TooLarge {
				tooLarge = append(tooLarge, e.Name)
				if e.Tags <= e.Limit || e.Limit != tc.maxTags {
					t.Errorf("catalog entry %+v", e)
				}
			}
			if !slices.Equal(tooLarge, reg.TooLarge(tc.maxTags)) {
				t.Fatalf("too-large catalog = %v, want %v", tooLarge, reg.TooLarge(tc.maxTags))
			}
			if tc.maxTags > 0 && len(tooLarge) == 0 {
				t.Fatal("the test layout should have a repository over the limit")
			}
			requireDestinationBlobs(t, dst, reg.Layout, wantBlobs(want))
		})
	}
}

func TestSemverPolicy(t *testing.T) {
	at := func(i int) time.Time { return time.Unix(int64(1000+i), 0) }
	var tags []transfer.Tag
	for i, name := range []string{"build-1", "v1.0.0", "build-2", "1.2.3-rc.1+meta", "master", "feature-x", "latest", "v01.0.0", "build-3"} {
		tags = append(tags, transfer.Tag{Name: name, ModTime: at(i)})
	}
	transfer.SortTagsNewestFirst(tags)
	names := func(ts []transfer.Tag) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	if got := names(transfer.SemverTags(0).SelectTags("group/app", tags)); !slices.Equal(got, []string{"latest", "master", "1.2.3-rc.1+meta", "v1.0.0"}) {
		t.Errorf("SemverTags(0) = %v", got)
	}
	// Back-filled with the most recent others up to 6 tags in total.
	if got := names(transfer.SemverTags(6).SelectTags("group/app", tags)); !slices.Equal(got, []string{"build-3", "v01.0.0", "latest", "master", "1.2.3-rc.1+meta", "v1.0.0"}) {
		t.Errorf("SemverTags(6) = %v", got)
	}
	if got := names(transfer.MostRecentTags(2).SelectTags("group/app", tags)); !slices.Equal(got, []string{"build-3", "v01.0.0"}) {
		t.Errorf("MostRecentTags(2) = %v", got)
	}
}

func TestImportDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	src, rawDst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(4))
	dst, dstStats := faultblob.Wrap(rawDst, faultblob.Options{})
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{DryRun: true, IncludeUntagged: true})
	rep, err := im.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || dstStats.Ops(faultblob.OpWrite) != 0 || dstStats.Ops(faultblob.OpAttributes) != 0 {
		t.Fatalf("dry run touched the destination: writes %d, attributes %d", dstStats.Ops(faultblob.OpWrite), dstStats.Ops(faultblob.OpAttributes))
	}
	for _, m := range []string{"CreateRepository", "LinkBlob", "PutManifest", "Tag"} {
		if n := sink.Calls(m); n != 0 {
			t.Fatalf("dry run called Sink.%s %d times", m, n)
		}
	}
	want := reg.Expect(transfertest.ExpectOptions{IncludeUntagged: true, Pass: transfer.FinalImport})
	blobs, manifests, tags := want.Counts()
	var gotBlobs int
	for _, rr := range rep.Repositories {
		gotBlobs += rr.Blobs
	}
	if rep.Manifests != manifests || rep.Tags != tags || gotBlobs != blobs {
		t.Fatalf("dry run reports %d manifests, %d tags, %d blob links; want %d, %d, %d", rep.Manifests, rep.Tags, gotBlobs, manifests, tags, blobs)
	}
}

// countingTransferer counts Transfer calls per digest.
type countingTransferer struct {
	next  transfer.Transferer
	mu    sync.Mutex
	calls map[digest.Digest]int
}

func (c *countingTransferer) Transfer(ctx context.Context, d digest.Digest) (transfer.Result, error) {
	c.mu.Lock()
	c.calls[d]++
	c.mu.Unlock()
	return c.next.Transfer(ctx, d)
}

func TestImportCopiesSharedBlobsOnce(t *testing.T) {
	ctx := context.Background()
	rawSrc, dst := memBucket(t), memBucket(t)
	spec := transfertest.SmallSpec(5)
	spec.Repositories, spec.Images, spec.BaseImages = 12, 60, 2
	reg := generate(t, rawSrc, spec)
	// Latency keeps transfers in flight long enough to overlap.
	src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Latency: 2 * time.Millisecond})
	ct := &countingTransferer{next: mustNew(t, src, dst, transfer.Options{}), calls: map[digest.Digest]int{}}
	sink := transfertest.NewMemSink()
	im := newImporter(t, src, ct, sink, transfer.ImportOptions{RepositoryConcurrency: 12, Concurrency: 16})
	rep, err := im.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := reg.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport})
	requireState(t, want, sink.State())
	links, _, _ := want.Counts()
	unique := wantBlobs(want)
	if links <= len(unique) {
		t.Fatalf("test layout shares no blobs between repositories (%d links, %d blobs)", links, len(unique))
	}
	for d, n := range ct.calls {
		if n != 1 {
			t.Errorf("blob %s transferred %d times", d, n)
		}
	}
	if len(ct.calls) != len(unique) || rep.BlobsCopied != int64(len(unique)) {
		t.Fatalf("transferred %d distinct blobs (report: %d copied), want %d", len(ct.calls), rep.BlobsCopied, len(unique))
	}
}

func TestImportProgress(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(6))
	var (
		events []transfer.Progress
		busy   atomic.Int32
	)
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), transfertest.NewMemSink(), transfer.ImportOptions{
		Progress: func(p transfer.Progress) {
			if busy.Add(1) != 1 {
				t.Error("progress callback called concurrently")
			}
			events = append(events, p)
			busy.Add(-1)
		},
	})
	rep, err := im.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[transfer.EventKind]int{}
	total := 0
	for _, e := range events {
		kinds[e.Kind]++
		// Discovery streams: the total grows as repositories are found.
		if e.RepositoriesTotal < total || e.RepositoriesTotal < e.RepositoriesDone || e.RepositoriesTotal > len(reg.Repositories) {
			t.Fatalf("event total = %d after %d (done %d), want a non-decreasing count up to %d", e.RepositoriesTotal, total, e.RepositoriesDone, len(reg.Repositories))
		}
		total = e.RepositoriesTotal
	}
	if total != len(reg.Repositories) {
		t.Fatalf("final total = %d, want %d", total, len(reg.Repositories))
	}
	last := events[len(events)-1]
	if kinds[transfer.EventRepositoryStarted] != len(reg.Repositories) || kinds[transfer.EventRepositoryDone] != len(reg.Repositories) ||
		int64(kinds[transfer.EventBlobDone]) != last.BlobsCopied+last.BlobsShared+last.BlobsSkipped {
		t.Fatalf("event counts %v, last %+v", kinds, last)
	}
	s := last.Stats
	if last.RepositoriesDone != len(reg.Repositories) || last.ETA != 0 || last.BytesCopied != rep.BytesCopied || last.BytesPerSecond <= 0 ||
		s.Repositories != len(reg.Repositories) || s.RepositoryMin > s.RepositoryAvg || s.RepositoryAvg > s.RepositoryMax ||
		s.BlobTransfers == 0 || s.BlobMin > s.BlobAvg || s.BlobAvg > s.BlobMax {
		t.Fatalf("final progress = %+v", last)
	}
	var sawETA bool
	for _, e := range events {
		sawETA = sawETA || (e.RepositoriesDone > 0 && e.RepositoriesDone < e.RepositoriesTotal && e.ETA > 0)
	}
	if !sawETA {
		t.Fatal("no progress event had an ETA while repositories remained")
	}
}

func TestRepositoriesFindsNestedPaths(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(7))
	l := reg.Layout
	// An uploads-only repository nested inside another, and a stray file.
	if err := transfertest.WriteObject(ctx, src, l.RepositoryPrefix(reg.Repositories[0].Name+"/uploads-only")+"_uploads/x/data", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := transfertest.WriteObject(ctx, src, l.RepositoriesPrefix()+"README", []byte("x")); err != nil {
		t.Fatal(err)
	}
	im := newImporter(t, src, mustNew(t, src, memBucket(t), transfer.Options{}), transfertest.NewMemSink(), transfer.ImportOptions{})
	got, err := im.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range reg.Repositories {
		want = append(want, r.Name)
	}
	want = append(want, reg.Repositories[0].Name+"/uploads-only")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Repositories = %v\nwant %v", got, want)
	}
}

func goroutinesSettle(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Repositories are imported while the walk is still listing: on a store
// with per-operation latency, the first repository starts long before the
// last one is found.
func TestDiscoveryStreamsIntoImport(t *testing.T) {
	ctx := context.Background()
	raw, dst := memBucket(t), memBucket(t)
	spec := transfertest.SmallSpec(8)
	spec.Repositories, spec.Images = 40, 40
	reg := generate(t, raw, spec)
	src, _ := faultblob.Wrap(raw, faultblob.Options{Latency: 2 * time.Millisecond})
	var startedEarly atomic.Bool
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), transfertest.NewMemSink(), transfer.ImportOptions{
		Concurrency: 2, RepositoryConcurrency: 2,
		Progress: func(p transfer.Progress) {
			if p.Kind == transfer.EventRepositoryStarted && p.RepositoriesTotal < len(reg.Repositories) {
				startedEarly.Store(true)
			}
		},
	})
	rep, err := im.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repositories) != len(reg.Repositories) || !slices.IsSortedFunc(rep.Repositories, func(a, b transfer.RepositoryReport) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("report has %d repositories (sorted: want), want %d", len(rep.Repositories), len(reg.Repositories))
	}
	if !startedEarly.Load() {
		t.Fatal("no repository started before discovery ended")
	}
}

// A blob that one manifest references as a Docker layer and another as an
// OCI layer is copied once and linked under both media types.
func TestImportLinksBlobUnderEveryMediaType(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	c := craft{t: t, b: src, l: mustLayout(t, "")}
	layer := c.blob([]byte("a layer pushed by docker and by buildkit"))
	dockerCfg, ociCfg := c.blob([]byte(`{"config":"docker"}`)), c.blob([]byte(`{"config":"oci"}`))
	dockerCfg.MediaType, ociCfg.MediaType = transfertest.MediaTypeDockerConfig, transfertest.MediaTypeOCIConfig
	ociLayer := layer
	ociLayer.MediaType = transfertest.MediaTypeOCILayer
	docker := c.manifest("app", transfertest.ImageManifest(transfer.MediaTypeDockerManifest, dockerCfg, layer), dockerCfg, layer)
	oci := c.manifest("app", transfertest.ImageManifest(ocispec.MediaTypeImageManifest, ociCfg, ociLayer), ociCfg)
	c.tag("app", "docker", string(docker.Digest))
	c.tag("app", "oci", string(oci.Digest))

	sink := transfertest.NewMemSink()
	rep, err := newImporter(t, src, mustNew(t, src, memBucket(t), transfer.Options{}), sink, transfer.ImportOptions{}).Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range sink.LinkedBlob("app", layer.Digest) {
		types = append(types, d.MediaType)
		if d.Size != layer.Size {
			t.Errorf("linked as %s with size %d, want %d", d.MediaType, d.Size, layer.Size)
		}
	}
	slices.Sort(types)
	if want := []string{transfertest.MediaTypeDockerLayer, transfertest.MediaTypeOCILayer}; !slices.Equal(types, want) {
		t.Fatalf("layer linked as %v, want %v", types, want)
	}
	if rep.BlobsCopied != 3 || rep.Repositories[0].Blobs != 3 {
		t.Fatalf("copied %d blobs, repository links %d distinct; want 3 and 3", rep.BlobsCopied, rep.Repositories[0].Blobs)
	}
}

// ReportFailuresOnly lists only failed repositories and still counts every
// repository and total.
func TestReportFailuresOnly(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	generate(t, src, transfertest.SmallSpec(31))
	full, err := newImporter(t, src, mustNew(t, src, memBucket(t), transfer.Options{}), transfertest.NewMemSink(), transfer.ImportOptions{}).Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := craft{t: t, b: src, l: mustLayout(t, "")}
	c.tag("zz/broken", "v1", "garbage\n")
	sink := transfertest.NewMemSink()
	rep, err := newImporter(t, src, mustNew(t, src, memBucket(t), transfer.Options{}), sink,
		transfer.ImportOptions{ReportFailuresOnly: true, ContinueOnError: true}).Import(ctx)
	if !errors.Is(err, transfer.ErrBadLink) {
		t.Fatalf("err = %v, want the broken repository's ErrBadLink", err)
	}
	if len(rep.Repositories) != 1 || rep.Repositories[0].Name != "zz/broken" || rep.RepositoryCount != full.RepositoryCount+1 {
		t.Fatalf("Repositories = %d (%v), RepositoryCount = %d; want only zz/broken, %d counted", len(rep.Repositories), rep.Repositories, rep.RepositoryCount, full.RepositoryCount+1)
	}
	if rep.Manifests != full.Manifests || rep.Tags != full.Tags || full.RepositoryCount != len(full.Repositories) {
		t.Fatalf("totals %d manifests, %d tags; want %d, %d", rep.Manifests, rep.Tags, full.Manifests, full.Tags)
	}
	if d := transfertest.Diff(transfertest.State{}, sink.State()); !strings.Contains(d, "unexpected") {
		t.Fatal("nothing was imported")
	}
}

// TestWithProgressFollowsOnePass: two passes of one shared Importer, each
// under its own WithProgress, see only their own events, and a
// repository's planned blob count is the number of its blob events.
func TestWithProgressFollowsOnePass(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(4))
	var shared atomic.Int64
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), transfertest.NewMemSink(), transfer.ImportOptions{
		Progress: func(p transfer.Progress) { shared.Add(1) },
	})
	var names []string
	for _, r := range reg.Repositories {
		if len(r.Tags) > 0 {
			names = append(names, r.Name)
		}
	}
	if len(names) < 2 {
		t.Fatalf("need two tagged repositories, have %d", len(names))
	}
	names = names[:2]
	type seen struct {
		order           []string
		planned, blobs  int
		repos           map[string]bool
		kindsBeforePlan int
	}
	got := make([]seen, len(names))
	var g errgroup.Group
	for i, name := range names {
		g.Go(func() error {
			s := &got[i]
			s.repos = map[string]bool{}
			pctx := transfer.WithProgress(ctx, func(p transfer.Progress) { s.order = append(s.order, "outer") })
			pctx = transfer.WithProgress(pctx, func(p transfer.Progress) {
				s.order = append(s.order, "inner")
				s.repos[p.Repository] = true
				switch p.Kind {
				case transfer.EventRepositoryPlanned:
					s.planned = p.Planned.Units()
					if p.Planned.Blobs == 0 || p.Planned.Manifests == 0 || p.Planned.Tags != 0 {
						t.Errorf("pre-import of %s planned %+v, want blobs and manifests, no tags", p.Repository, *p.Planned)
					}
				case transfer.EventBlobDone, transfer.EventManifestDone, transfer.EventTagDone:
					if s.planned == 0 {
						s.kindsBeforePlan++
					}
					s.blobs++
				}
			})
			_, err := im.PreImport(pctx, name)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var events int64
	for i, s := range got {
		if len(s.repos) != 1 || !s.repos[names[i]] {
			t.Errorf("pass of %s saw events of %v", names[i], s.repos)
		}
		if s.planned == 0 || s.planned != s.blobs || s.kindsBeforePlan != 0 {
			t.Errorf("pass of %s: planned %d units, saw %d blob, manifest and tag events (%d before the plan)", names[i], s.planned, s.blobs, s.kindsBeforePlan)
		}
		for j := 0; j+1 < len(s.order); j += 2 {
			if s.order[j] != "outer" || s.order[j+1] != "inner" {
				t.Fatalf("pass of %s: callbacks called in order %v, want outer then inner", names[i], s.order[j:j+2])
			}
		}
		events += int64(len(s.order) / 2)
	}
	if shared.Load() != events {
		t.Errorf("ImportOptions.Progress saw %d events, the passes %d", shared.Load(), events)
	}

	// The final pass plans again, tags included: its planned units are
	// its blob, manifest and tag events too.
	var plan transfer.Planned
	units, plans, tags := 0, 0, 0
	fctx := transfer.WithProgress(ctx, func(p transfer.Progress) {
		switch p.Kind {
		case transfer.EventRepositoryPlanned:
			plan, plans = *p.Planned, plans+1
		case transfer.EventTagDone:
			tags++
			units++
		case transfer.EventBlobDone, transfer.EventManifestDone:
			units++
		}
	})
	if _, err := im.Import(fctx, names[0]); err != nil {
		t.Fatal(err)
	}
	if plans != 1 || plan.Units() != units || plan.Tags == 0 || plan.Tags != tags {
		t.Errorf("final pass: %d plans, planned %+v, saw %d events (%d tags)", plans, plan, units, tags)
	}
}

// A pass whose context ends while its progress callback holds it at a
// repository's plan writes nothing for that repository, even when the
// callback returns as soon as it sees the context done: a context tree
// is cancelled one context at a time, so the pass's own contexts below
// it may not be cancelled yet at that moment (the import server's hold
// wrote that way); with an Observer whose PassStart derives a cancellable
// context too. Many rounds, since the window is short.
func TestPassCancelledAtPlanWritesNothing(t *testing.T) {
	src := memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(1))
	name := reg.Repositories[0].Name
	deriving := transfer.ObserverFuncs{OnPassStart: func(ctx context.Context, _ transfer.PassStartEvent) context.Context {
		ctx, cancel := context.WithCancel(ctx)
		context.AfterFunc(ctx, cancel) // ends with its parent; uses cancel
		return ctx
	}}
	for round := range 400 {
		sink := transfertest.NewMemSink()
		opts := transfer.ImportOptions{}
		if round%2 == 1 {
			opts.Observer = deriving
		}
		im := newImporter(t, src, mustNew(t, src, memBucket(t), transfer.Options{}), sink, opts)
		ctx, cancel := context.WithCancel(context.Background())
		pctx := transfer.WithProgress(ctx, func(p transfer.Progress) {
			if p.Kind == transfer.EventRepositoryPlanned {
				go cancel()
				<-ctx.Done()
			}
		})
		_, err := im.PreImport(pctx, name)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: PreImport cancelled at its plan: %v, want context.Canceled", round, err)
		}
		for _, m := range []string{"CreateRepository", "LinkBlob", "PutManifest", "Tag"} {
			if n := sink.Calls(m); n != 0 {
				t.Fatalf("round %d: a pass cancelled at its plan called Sink.%s %d times", round, m, n)
			}
		}
	}
}
