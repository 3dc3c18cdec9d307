package transfer_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// A final import repeated after tags were deleted or moved in the source
// ends with the tags a one-pass import of the final source has (on
// MemSink and LayoutSink), and reports the ones it removed.
func TestRerunAfterTagsDeletedOrMovedConverges(t *testing.T) {
	ctx := context.Background()
	src := memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(17))
	l := reg.Layout

	var repo *transfertest.Repository
	for i := range reg.Repositories {
		if len(reg.Repositories[i].Tags) >= 3 {
			repo = &reg.Repositories[i]
			break
		}
	}
	if repo == nil {
		t.Fatal("no repository with three tags")
	}
	memSink, dst := transfertest.NewMemSink(), memBucket(t)
	layoutSink := transfer.NewLayoutSink(dst, l, fastRetry)
	importInto := func(sink transfer.Sink, b transfer.Bucket) *transfer.Report {
		t.Helper()
		rep, err := newImporter(t, src, mustNew(t, src, b, transfer.Options{}), sink, transfer.ImportOptions{}).Import(ctx, repo.Name)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	importInto(memSink, memBucket(t))
	importInto(layoutSink, dst)

	// Between the passes: one tag deleted, one moved to another manifest.
	deleted, moved, target := repo.Tags[0].Name, repo.Tags[1].Name, repo.Tags[2].Digest
	deleteTag(t, src, l, repo.Name, deleted)
	if err := transfertest.WriteObject(ctx, src, l.TagCurrentLinkKey(repo.Name, moved), []byte(target)); err != nil {
		t.Fatal(err)
	}

	rep := importInto(memSink, memBucket(t))
	if got := rep.Repositories[0].TagsRemoved; !slices.Equal(got, []string{deleted}) {
		t.Fatalf("TagsRemoved = %v, want [%s]", got, deleted)
	}
	importInto(layoutSink, dst)

	fresh := transfertest.NewMemSink()
	importInto(fresh, memBucket(t))
	want := fresh.State()[repo.Name].Tags
	if got := memSink.State()[repo.Name].Tags; !maps.Equal(got, want) {
		t.Fatalf("MemSink tags after two passes = %v, one pass = %v", got, want)
	}
	got, err := layoutSink.Tags(ctx, repo.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("LayoutSink tags after two passes = %v, one pass = %v", got, want)
	}
	if _, ok := want[deleted]; ok || want[moved] != target {
		t.Fatalf("one-pass tags %v: the source change did not take", want)
	}
}

// deleteTag removes a tag from a source layout, as a registry's tag
// delete does (its directory, current link and history).
func deleteTag(t *testing.T, b transfer.Bucket, l transfer.Layout, repo, tag string) {
	t.Helper()
	ctx := context.Background()
	for o, err := range transfer.ListAll(ctx, b, transfer.ListOptions{Prefix: l.TagPrefix(repo, tag)}) {
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, o.Key); err != nil {
			t.Fatal(err)
		}
	}
}

// repositoryObjects returns every object under the repositories prefix
// of b with its content: links, tag history and the referrers index.
func repositoryObjects(t *testing.T, b transfer.Bucket, l transfer.Layout) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for o, err := range transfer.ListAll(ctx, b, transfer.ListOptions{Prefix: l.RepositoriesPrefix()}) {
		if err != nil {
			t.Fatal(err)
		}
		data, err := transfertest.ReadObject(ctx, b, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[o.Key] = string(data)
	}
	return out
}

// twoSinks is a MemSink and a LayoutSink fed by the same passes.
type twoSinks struct {
	mem    *transfertest.MemSink
	layout *transfer.LayoutSink
	dst    transfer.Bucket
}

func newTwoSinks(t *testing.T, l transfer.Layout) twoSinks {
	dst := memBucket(t)
	return twoSinks{mem: transfertest.NewMemSink(), layout: transfer.NewLayoutSink(dst, l, fastRetry), dst: dst}
}

// run runs one pass into both sinks and returns the MemSink's report.
func (s twoSinks) run(t *testing.T, src transfer.Bucket, pass transfer.Pass, opts transfer.ImportOptions) *transfer.Report {
	t.Helper()
	ctx := context.Background()
	var reports []*transfer.Report
	for _, into := range []struct {
		sink transfer.Sink
		dst  transfer.Bucket
	}{{s.mem, memBucket(t)}, {s.layout, s.dst}} {
		im := newImporter(t, src, mustNew(t, src, into.dst, transfer.Options{}), into.sink, opts)
		run := im.Import
		if pass == transfer.PreImport {
			run = im.PreImport
		}
		rep, err := run(ctx)
		if err != nil {
			t.Fatalf("%s: %v", pass, err)
		}
		reports = append(reports, rep)
	}
	return reports[0]
}

// requireSame fails unless s holds exactly what one holds: the MemSink
// states, and every object under the LayoutSinks' repositories.
func (s twoSinks) requireSame(t *testing.T, one twoSinks, l transfer.Layout) {
	t.Helper()
	if d := transfertest.Diff(one.mem.State(), s.mem.State()); d != "" {
		t.Fatalf("MemSink after two passes differs from a one-pass import:\n%s", d)
	}
	want, got := repositoryObjects(t, one.dst, l), repositoryObjects(t, s.dst, l)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("LayoutSink: %s = %q, one pass has %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("LayoutSink: %s left over (a one-pass import does not write it)", k)
		}
	}
}

// A pre-import, then tags deleted and moved in the source, then the final
// import: the destination ends exactly as a one-pass import of the final
// source (MemSink state; every LayoutSink object under repositories/,
// referrers index included), with the stale manifests and blob links
// reported. Referrers, cosign and fallback tags of a deleted image go with
// it.
func TestFinalPassRemovesStaleContent(t *testing.T) {
	l := mustLayout(t, "")
	src := memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(23))
	sc := buildSupplyChain(t, src)

	two := newTwoSinks(t, l)
	two.run(t, src, transfer.PreImport, transfer.ImportOptions{})

	// Between the passes: the signed image's tag is deleted with its
	// cosign and fallback tags (as "cosign clean" does), so the image, its
	// SBOM, the signature of that and the cosign signature are reached by
	// nothing; one tag per generated repository with two or more is
	// deleted and one moved.
	for _, tag := range []string{"v1.0.0", "sha256-" + sc.image.Digest.Encoded() + ".sig", "sha256-" + sc.image.Digest.Encoded()} {
		deleteTag(t, src, l, scRepo, tag)
	}
	var wantStale bool
	for _, r := range reg.Repositories {
		if len(r.Tags) < 2 {
			continue
		}
		deleteTag(t, src, l, r.Name, r.Tags[0].Name)
		if err := transfertest.WriteObject(context.Background(), src, l.TagCurrentLinkKey(r.Name, r.Tags[1].Name), []byte(r.Tags[len(r.Tags)-1].Digest)); err != nil {
			t.Fatal(err)
		}
		wantStale = true
	}
	if !wantStale {
		t.Fatal("no generated repository with two tags")
	}

	rep := two.run(t, src, transfer.FinalImport, transfer.ImportOptions{})
	one := newTwoSinks(t, l)
	one.run(t, src, transfer.FinalImport, transfer.ImportOptions{})
	two.requireSame(t, one, l)

	var stale []digest.Digest
	for _, rr := range rep.Repositories {
		if rr.Name == scRepo {
			stale = rr.StaleManifests
		}
	}
	for _, d := range []ocispec.Descriptor{sc.image, sc.sbom, sc.sig, sc.cosign, sc.fb} {
		if !slices.Contains(stale, d.Digest) {
			t.Errorf("StaleManifests of %s = %v: %s missing", scRepo, stale, d.Digest)
		}
	}
	if slices.Contains(stale, sc.index.Digest) || slices.Contains(stale, sc.indexRef.Digest) {
		t.Errorf("StaleManifests %v include the still tagged index or its referrer", stale)
	}

	// A repeated final import changes nothing and finds nothing stale.
	rep = two.run(t, src, transfer.FinalImport, transfer.ImportOptions{})
	for _, rr := range rep.Repositories {
		if len(rr.StaleManifests)+len(rr.StaleBlobs)+len(rr.TagsRemoved) > 0 {
			t.Errorf("%s: third pass removed %v %v %v", rr.Name, rr.TagsRemoved, rr.StaleManifests, rr.StaleBlobs)
		}
	}
	two.requireSame(t, one, l)
}

// A final pass under a narrower tag policy than the pre-import removes
// what only the dropped tags reached; ReportStale lists it and keeps it;
// KeepStale neither looks nor removes.
func TestFinalPassStalePolicies(t *testing.T) {
	l := mustLayout(t, "")
	src := memBucket(t)
	generate(t, src, transfertest.SmallSpec(29))
	narrow := transfer.ImportOptions{Tags: transfer.NewestSemver(1)}

	one := newTwoSinks(t, l)
	one.run(t, src, transfer.FinalImport, narrow)

	removed := newTwoSinks(t, l)
	removed.run(t, src, transfer.PreImport, transfer.ImportOptions{})
	rep := removed.run(t, src, transfer.FinalImport, narrow)
	removed.requireSame(t, one, l)
	var staleManifests, staleBlobs int
	for _, rr := range rep.Repositories {
		staleManifests += len(rr.StaleManifests)
		staleBlobs += len(rr.StaleBlobs)
	}
	if staleManifests == 0 || staleBlobs == 0 {
		t.Fatalf("stale manifests %d, blobs %d: the narrower policy dropped nothing", staleManifests, staleBlobs)
	}

	for _, policy := range []transfer.StalePolicy{transfer.ReportStale, transfer.KeepStale} {
		t.Run(policy.String(), func(t *testing.T) {
			s := newTwoSinks(t, l)
			s.run(t, src, transfer.PreImport, transfer.ImportOptions{})
			before := s.mem.State()
			opts := narrow
			opts.Stale = policy
			rep := s.run(t, src, transfer.FinalImport, opts)
			var reported int
			for _, rr := range rep.Repositories {
				reported += len(rr.StaleManifests)
			}
			if want := map[transfer.StalePolicy]int{transfer.ReportStale: staleManifests}[policy]; reported != want {
				t.Fatalf("%d stale manifests reported, want %d", reported, want)
			}
			_, m0, _ := before.Counts()
			_, m1, _ := s.mem.State().Counts()
			if m1 != m0 {
				t.Fatalf("manifests %d -> %d: %s must not remove any", m0, m1, policy)
			}
		})
	}
}

// deleteCounter is a MemSink that counts DeleteManifest calls and refuses
// a second delete of the same manifest, as a registry's own Sink may.
type deleteCounter struct {
	*transfertest.MemSink
	deleted map[digest.Digest]int
}

func (s *deleteCounter) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	s.deleted[d]++
	if s.deleted[d] > 1 {
		return fmt.Errorf("manifest %s deleted twice", d)
	}
	return s.MemSink.DeleteManifest(ctx, repo, d)
}

// A stale index whose stale child the source can no longer read: the
// child is deleted once (it came both from the index's walk and from the
// unreadable list before; a Sink that refuses a second delete failed the
// repository).
func TestStaleChildThatCannotBeReadIsDeletedOnce(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	src := memBucket(t)
	sc := buildSupplyChain(t, src)
	sink := &deleteCounter{MemSink: transfertest.NewMemSink(), deleted: map[digest.Digest]int{}}
	run := func(pass transfer.Pass) *transfer.Report {
		t.Helper()
		im := newImporter(t, src, mustNew(t, src, memBucket(t), transfer.Options{}), sink, transfer.ImportOptions{})
		do := im.Import
		if pass == transfer.PreImport {
			do = im.PreImport
		}
		rep, err := do(ctx, scRepo)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	run(transfer.PreImport)
	deleteTag(t, src, l, scRepo, "v0.9.0")
	// The child's revision is deleted and its payload is gone (a
	// registry's garbage collector ran for it).
	for _, key := range []string{l.RevisionLinkKey(scRepo, sc.child.Digest), l.BlobKey(sc.child.Digest)} {
		if err := src.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	rep := run(transfer.FinalImport)
	stale := rep.Repositories[0].StaleManifests
	for _, d := range []digest.Digest{sc.index.Digest, sc.child.Digest} {
		if !slices.Contains(stale, d) {
			t.Fatalf("StaleManifests %v: %s missing", stale, d)
		}
	}
	for _, d := range stale {
		if sink.deleted[d] != 1 {
			t.Errorf("stale manifest %s deleted %d times, want once", d, sink.deleted[d])
		}
	}
}
