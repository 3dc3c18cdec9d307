package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"gocloud.dev/blob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// An existing object Ferry wrote is trusted on its record without being
// read; one it did not write is read and hashed; a same-size corrupt one
// is replaced, or reported with ReportMismatched; TrustSize keeps it.
func TestExistingDestinationPolicies(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	data := transfertest.RandomBytes(21, 200_000)
	bad := bytes.Clone(data)
	bad[100] ^= 1

	src, dst := memBucket(t), memBucket(t)
	d := transfertest.PutBlob(t, src, l, data)
	tr := mustNew(t, src, dst, transfer.Options{BufferSize: 32 << 10})
	if res, err := tr.Transfer(ctx, d); err != nil || res.HostBytes != int64(len(data)) {
		t.Fatalf("first copy = %+v, %v", res, err)
	}
	res, err := tr.Transfer(ctx, d)
	if err != nil || !res.Skipped || res.HostBytes != 0 {
		t.Fatalf("object Ferry wrote: %+v, %v; want skipped without reading it", res, err)
	}

	// Written by someone else with the right content: read, hashed, kept.
	if err := transfertest.WriteObject(ctx, dst, l.BlobKey(d), data); err != nil {
		t.Fatal(err)
	}
	res, err = tr.Transfer(ctx, d)
	if err != nil || !res.Skipped || res.HostBytes != int64(len(data)) {
		t.Fatalf("foreign good object: %+v, %v; want skipped after hashing it", res, err)
	}

	// Same size, wrong content, no record.
	for _, tc := range []struct {
		name    string
		opts    transfer.Options
		wantErr error
		keep    bool
	}{
		{"replaced (default)", transfer.Options{}, nil, false},
		{"verify-content", transfer.Options{Existing: transfer.VerifyContent}, nil, false},
		{"reported", transfer.Options{ReportMismatched: true}, transfer.ErrCorruptAtRest, true},
		{"trust-size keeps it", transfer.Options{Existing: transfer.TrustSize}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := transfertest.WriteObject(ctx, dst, l.BlobKey(d), bad); err != nil {
				t.Fatal(err)
			}
			res, err := mustNew(t, src, dst, tc.opts).Transfer(ctx, d)
			if !errors.Is(err, tc.wantErr) || (err != nil && !strings.Contains(err.Error(), d.String())) {
				t.Fatalf("err = %v, want %v naming the digest", err, tc.wantErr)
			}
			got, _ := transfertest.ReadObject(ctx, dst, l.BlobKey(d))
			if kept := bytes.Equal(got, bad); kept != tc.keep {
				t.Fatalf("corrupt object kept = %v, want %v (result %+v)", kept, tc.keep, res)
			}
			if !tc.keep && (!res.Replaced || res.Skipped) {
				t.Fatalf("result %+v, want Replaced", res)
			}
		})
	}

	// A record naming another digest does not make an object trusted.
	other := digest.FromString("something else")
	if err := dst.Blob().WriteAll(ctx, l.BlobKey(d), bad, &blob.WriterOptions{Metadata: map[string]string{transfer.MetadataDigest: other.String()}}); err != nil {
		t.Fatal(err)
	}
	if res, err := tr.Transfer(ctx, d); err != nil || !res.Replaced {
		t.Fatalf("object with a foreign record: %+v, %v; want replaced", res, err)
	}
	transfertest.AssertBlobVerified(t, dst, l, d)
}

// An Importer into a destination bucket that already holds same-size
// corrupt objects (an earlier copy by other means) replaces them.
func TestImportReplacesCorruptDestinationBlobs(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(4))
	n := 0
	for d, size := range reg.Blobs {
		if size < 2 || n >= 10 {
			continue
		}
		good, err := transfertest.ReadObject(ctx, src, reg.Layout.BlobKey(d))
		if err != nil {
			t.Fatal(err)
		}
		good[size/2] ^= 0x20
		if err := transfertest.WriteObject(ctx, dst, reg.Layout.BlobKey(d), good); err != nil {
			t.Fatal(err)
		}
		n++
	}
	sink := transfer.NewLayoutSink(dst, reg.Layout, fastRetry)
	im := newImporter(t, src, mustNew(t, src, dst, transfer.Options{}), sink, transfer.ImportOptions{IncludeUntagged: true, IncludeOrphanLayers: true})
	if _, err := im.Import(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := transfertest.CheckBlobs(ctx, dst, reg.Layout); err != nil {
		t.Fatalf("a corrupt destination blob survived the import: %v", err)
	}
}

// A copy whose commit succeeded but whose answer was lost is reported as
// copied when the retry finds it, and the Importer's totals count it.
func TestLostAcknowledgementIsNotSkipped(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	src, rawDst := memBucket(t), memBucket(t)
	d := transfertest.PutBlob(t, src, l, transfertest.RandomBytes(3, 5000))
	dst, _ := faultblob.Wrap(rawDst, faultblob.Options{Inject: faultblob.FailFirst(1, faultblob.LostAck, faultblob.OpWrite)})
	res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry}).Transfer(ctx, d)
	if err != nil || res.Skipped || res.Attempts != 2 || res.Bytes != 5000 || res.Method() != "streamed" {
		t.Fatalf("Transfer = %+v, %v; want streamed (not skipped) in 2 attempts", res, err)
	}
	transfertest.AssertBlobVerified(t, rawDst, l, d)
}

// An Importer over an empty bucket, a mistyped root or a repository that
// is not there says so instead of reporting success.
func TestImportEmptyOrMistypedSource(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	tr := mustNew(t, src, dst, transfer.Options{})
	_, err := newImporter(t, src, tr, transfertest.NewMemSink(), transfer.ImportOptions{SourceName: "mem://old"}).Import(ctx)
	if !errors.Is(err, transfer.ErrEmptySource) || !strings.Contains(err.Error(), "mem://old is empty") {
		t.Fatalf("empty bucket: err = %v", err)
	}
	generate(t, src, transfertest.SmallSpec(5))
	_, err = newImporter(t, src, tr, transfertest.NewMemSink(), transfer.ImportOptions{Root: "registry/v2"}).Import(ctx)
	if !errors.Is(err, transfer.ErrEmptySource) || !strings.Contains(err.Error(), `"docker"`) {
		t.Fatalf("mistyped root: err = %v, want ErrEmptySource listing the top level", err)
	}
	_, err = newImporter(t, src, tr, transfertest.NewMemSink(), transfer.ImportOptions{}).Import(ctx, "no/such/repository")
	if !errors.Is(err, transfer.ErrEmptySource) || !strings.Contains(err.Error(), "no/such/repository") {
		t.Fatalf("missing repository: err = %v", err)
	}
}

// A crash mid-copy leaves fileblob's temporary file next to the key (with
// no_tmp_dir); the next copy of that blob through gocloudblob removes it
// once it is older than LeftoverAge, and SweepLeftovers removes all of them.
func TestLeftoversOfInterruptedWritesAreSwept(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := fileBucket(t, srcDir), fileBucket(t, dstDir)
	l := mustLayout(t, "")
	d := transfertest.PutBlob(t, src, l, transfertest.RandomBytes(8, 100_000))

	// The "crashed" copy: a writer that never closes.
	crashed, cancel := context.WithCancel(ctx)
	w, err := dst.Blob().NewWriter(crashed, l.BlobKey(d), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(transfertest.RandomBytes(9, 50_000)); err != nil {
		t.Fatal(err)
	}
	blobDir := filepath.Join(dstDir, filepath.FromSlash(filepath.Dir(l.BlobKey(d))))
	leftovers := func() []string {
		m, _ := filepath.Glob(filepath.Join(blobDir, "data.*.tmp"))
		return m
	}
	if len(leftovers()) != 1 {
		t.Fatalf("expected the crashed write's temporary file, found %v", leftovers())
	}
	if page, err := dst.List(ctx, transfer.ListOptions{Prefix: l.BlobsPrefix()}); err != nil || len(page.Objects) == 0 || !transfer.IsLeftover(page.Objects[0].Key) {
		t.Fatalf("List returns %v, %v; want the leftover", page, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(leftovers()[0], old, old); err != nil {
		t.Fatal(err)
	}
	res, err := mustNew(t, src, dst, transfer.Options{}).Transfer(ctx, d)
	if err != nil || res.Skipped {
		t.Fatalf("Transfer = %+v, %v", res, err)
	}
	if left := leftovers(); len(left) != 0 {
		t.Fatalf("leftovers after the next copy: %v", left)
	}
	cancel()
	_ = w.Close()

	// A leftover link write, found by a full sweep; a young one is spared.
	repoDir := filepath.Join(dstDir, filepath.FromSlash(l.LayersPrefix("a/b")), "sha256", "ab")
	if err := os.MkdirAll(repoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	oldLink, youngLink := filepath.Join(repoDir, "link.17f0c2a1b3c4d5e6.tmp"), filepath.Join(repoDir, "link.17f0c2a1b3c4d5e7.tmp")
	for _, f := range []string{oldLink, youngLink} {
		if err := os.WriteFile(f, []byte("sha256:"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(oldLink, old, old); err != nil {
		t.Fatal(err)
	}
	n, err := transfer.SweepLeftovers(ctx, dst, l, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("SweepLeftovers = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(youngLink); err != nil {
		t.Fatal("a leftover younger than the limit was removed")
	}
}

// A final pass with VerifyExisting re-checks the destination blobs of
// manifests the sink already has; without it they are trusted.
func TestFinalPassVerifyExisting(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	reg := generate(t, src, transfertest.SmallSpec(12))
	sink := transfertest.NewMemSink()
	tr := mustNew(t, src, dst, transfer.Options{Existing: transfer.VerifyContent})
	if _, err := newImporter(t, src, tr, sink, transfer.ImportOptions{}).PreImport(ctx); err != nil {
		t.Fatal(err)
	}
	want := wantBlobs(reg.Expect(transfertest.ExpectOptions{Pass: transfer.FinalImport}))
	var victim digest.Digest
	for d := range want {
		if reg.Blobs[d] > 1 {
			victim = d
			break
		}
	}
	data, err := transfertest.ReadObject(ctx, dst, reg.Layout.BlobKey(victim))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := transfertest.WriteObject(ctx, dst, reg.Layout.BlobKey(victim), data); err != nil {
		t.Fatal(err)
	}
	if _, err := newImporter(t, src, tr, sink, transfer.ImportOptions{}).Import(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := transfertest.CheckBlobs(ctx, dst, reg.Layout); err == nil {
		t.Fatal("a plain final pass re-checked blobs of known manifests (expected it to trust the sink)")
	}
	rep, err := newImporter(t, src, tr, sink, transfer.ImportOptions{VerifyExisting: true}).Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transfertest.CheckBlobs(ctx, dst, reg.Layout); err != nil {
		t.Fatalf("after a VerifyExisting pass: %v (%s)", err, rep.Summary())
	}
}
