package gcscopy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/opencontainers/go-digest"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// A full import between two GCS buckets copies every blob server-side and
// verified; a layer whose stored bytes do not match its digest fails its
// repository instead of being copied.
func TestImportGCSToGCS(t *testing.T) {
	ctx := context.Background()
	gcs := gcstest.NewFakeGCS(t, "old-registry", "new-registry")
	src, dst := gcs.Bucket(t, "old-registry"), gcs.Bucket(t, "new-registry")
	spec := transfertest.SmallSpec(13)
	spec.Repositories, spec.Images = 4, 16
	reg := generate(t, src, spec)
	var streamed, serverSide int
	newImporter := func(opts transfer.ImportOptions) *transfer.Importer {
		tr := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)})
		opts.Progress = func(p transfer.Progress) {
			if p.Kind == transfer.EventBlobDone && !p.Blob.Skipped {
				if p.Blob.ServerSide {
					serverSide++
				} else {
					streamed++
				}
			}
		}
		im, err := transfer.NewImporter(src, tr, transfer.NewLayoutSink(dst, reg.Layout, fastRetry), opts)
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	im := newImporter(transfer.ImportOptions{IncludeUntagged: true, IncludeOrphanLayers: true})
	if _, err := im.PreImport(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Import(ctx); err != nil {
		t.Fatal(err)
	}
	if streamed != 0 || serverSide == 0 {
		t.Fatalf("%d blobs streamed, %d copied server-side; want all server-side", streamed, serverSide)
	}
	transfertest.RequireSameLayout(t, src, dst, reg.Layout)
	if n, err := transfertest.CheckBlobs(ctx, dst, reg.Layout); err != nil || n != len(reg.Blobs) {
		t.Fatalf("CheckBlobs = %d, %v; want %d", n, err, len(reg.Blobs))
	}

	// Now a new repository whose layer is stored corrupt ("LAYER BYTES"
	// under the digest of "layer bytes").
	l := reg.Layout
	layer := digest.FromString("layer bytes")
	if err := transfertest.WriteObject(ctx, src, l.BlobKey(layer), []byte("LAYER BYTES")); err != nil {
		t.Fatal(err)
	}
	cfgData := []byte(`{"architecture":"amd64"}`)
	cfg := transfertest.PutBlob(t, src, l, cfgData)
	manifest := transfertest.ImageManifest(transfer.MediaTypeDockerManifest,
		descriptor(transfertest.MediaTypeDockerConfig, cfg, int64(len(cfgData))),
		descriptor(transfertest.MediaTypeDockerLayer, layer, 11))
	md := transfertest.PutBlob(t, src, l, manifest)
	for key, content := range map[string]digest.Digest{
		l.RevisionLinkKey("bad/image", md): md, l.LayerLinkKey("bad/image", cfg): cfg, l.LayerLinkKey("bad/image", layer): layer,
		l.TagCurrentLinkKey("bad/image", "latest"): md,
	} {
		if err := transfertest.WriteObject(ctx, src, key, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := newImporter(transfer.ImportOptions{}).Import(ctx, "bad/image")
	if !errors.Is(err, transfer.ErrCorruptAtRest) || !strings.Contains(err.Error(), layer.String()) {
		t.Fatalf("import of a corrupt layer: err = %v, want ErrCorruptAtRest naming %s", err, layer)
	}
	if ok, _ := transfertest.Exists(ctx, dst, l.BlobKey(layer)); ok {
		t.Fatal("the corrupt layer was copied")
	}
}

// hookTransport lets a test act on requests on their way to fake GCS.
type hookTransport struct {
	next http.RoundTripper
	hook func(req *http.Request, next http.RoundTripper) (*http.Response, error)
}

func (h *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.hook == nil {
		return h.next.RoundTrip(req)
	}
	return h.hook(req, h.next)
}

func hookedGCS(t *testing.T, buckets ...string) (*gcstest.FakeGCS, *hookTransport, *storage.Client) {
	t.Helper()
	gcs := gcstest.NewFakeGCS(t, buckets...)
	h := &hookTransport{next: gcs.Server.HTTPClient().Transport}
	return gcs, h, newClient(t, h)
}

// Every 404 of a server-side copy is told apart: a missing bucket is named,
// a replaced source generation is retried, a missing object is missing.
func TestGCSServerSide404s(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	data := []byte("blob bytes")

	t.Run("MissingDestinationBucket", func(t *testing.T) {
		_, _, client := hookedGCS(t, "src")
		src, dst := openBucket(t, client, "src"), openBucket(t, client, "no-such-bucket")
		d := transfertest.PutBlob(t, src, l, data)
		for _, verify := range []transfer.ServerSideVerify{transfer.VerifySource, transfer.TrustChecksums} {
			_, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst), ServerSideVerify: verify}).Transfer(ctx, d)
			var be *transfer.BucketError
			if !errors.As(err, &be) || be.Bucket != "gs://no-such-bucket" || errors.Is(err, transfer.ErrMissingBlob) || !strings.Contains(err.Error(), d.String()) {
				t.Fatalf("%v: err = %v, want a BucketError naming gs://no-such-bucket and the digest", verify, err)
			}
		}
		// Streamed into a missing bucket: named too.
		_, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, DestinationName: "gs://no-such-bucket"}).Transfer(ctx, d)
		if !errors.Is(err, transfer.ErrBucketNotFound) || !strings.Contains(err.Error(), "gs://no-such-bucket") {
			t.Fatalf("streamed: err = %v, want ErrBucketNotFound naming the bucket", err)
		}
	})

	t.Run("MissingSourceBucket", func(t *testing.T) {
		_, _, client := hookedGCS(t, "dst")
		src, dst := openBucket(t, client, "gone"), openBucket(t, client, "dst")
		d := digest.FromBytes(data)
		_, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}).Transfer(ctx, d)
		var be *transfer.BucketError
		if !errors.As(err, &be) || be.Bucket != "gs://gone" {
			t.Fatalf("err = %v, want a BucketError naming gs://gone", err)
		}
		_, err = mustNew(t, src, dst, transfer.Options{Retry: fastRetry, SourceName: "gs://gone"}).Transfer(ctx, d)
		if !errors.Is(err, transfer.ErrBucketNotFound) || !strings.Contains(err.Error(), "gs://gone") {
			t.Fatalf("streamed: err = %v, want ErrBucketNotFound naming gs://gone", err)
		}
	})

	t.Run("MissingObject", func(t *testing.T) {
		_, _, client := hookedGCS(t, "src", "dst")
		src, dst := openBucket(t, client, "src"), openBucket(t, client, "dst")
		d := digest.FromBytes(data)
		_, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}).Transfer(ctx, d)
		if !errors.Is(err, transfer.ErrMissingBlob) || errors.Is(err, transfer.ErrBucketNotFound) || !strings.Contains(err.Error(), d.String()) {
			t.Fatalf("err = %v, want ErrMissingBlob naming the digest", err)
		}
	})

	t.Run("GenerationRaceIsRetried", func(t *testing.T) {
		_, h, client := hookedGCS(t, "src", "dst")
		src, dst := openBucket(t, client, "src"), openBucket(t, client, "dst")
		d := transfertest.PutBlob(t, src, l, data)
		var raced atomic.Bool
		h.hook = func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
			if strings.Contains(req.URL.Path, "/rewriteTo/") && raced.CompareAndSwap(false, true) {
				// The registry pushes the same blob again just now: a new
				// generation with the same bytes.
				if err := transfertest.WriteObject(context.Background(), src, l.BlobKey(d), data); err != nil {
					return nil, err
				}
			}
			return next.RoundTrip(req)
		}
		var causes []transfer.RetryCause
		res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst),
			Observer: transfer.ObserverFuncs{OnRetried: func(_ context.Context, e transfer.RetryEvent) { causes = append(causes, e.Cause) }}}).Transfer(ctx, d)
		if err != nil || !res.ServerSide || res.Attempts != 2 {
			t.Fatalf("Transfer = %+v, %v; want a server-side copy on the second attempt", res, err)
		}
		if len(causes) != 1 || causes[0] != transfer.RetrySourceChanged {
			t.Fatalf("retry causes = %v, want [source_changed]", causes)
		}
		transfertest.AssertBlobVerified(t, dst, l, d)
	})
}

// A copy that committed but whose response was lost (503 after the work)
// is reported as copied on the retry, not as skipped.
func TestCommittedButUnacknowledgedIsNotSkipped(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	for _, tc := range []struct {
		name       string
		serverSide bool
		match      func(*http.Request) bool
	}{
		{"server-side", true, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/rewriteTo/") }},
		{"streamed", false, func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/upload/") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, h, client := hookedGCS(t, "src", "dst")
			src, dst := openBucket(t, client, "src"), openBucket(t, client, "dst")
			d := transfertest.PutBlob(t, src, l, bytes.Repeat([]byte("x"), 5000))
			var failed atomic.Bool
			h.hook = func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
				resp, err := next.RoundTrip(req)
				if err == nil && tc.match(req) && failed.CompareAndSwap(false, true) {
					_ = resp.Body.Close()
					return jsonResponse(req, 503, map[string]any{"error": map[string]any{"code": 503, "message": "backend error"}}), nil
				}
				return resp, err
			}
			opts := transfer.Options{Retry: fastRetry}
			if tc.serverSide {
				opts.ServerSide = mustCopier(t, src, dst)
			}
			res, err := mustNew(t, src, dst, opts).Transfer(ctx, d)
			if err != nil || res.Skipped || res.Attempts != 2 || res.Bytes != 5000 {
				t.Fatalf("Transfer = %+v, %v; want copied (not skipped) in 2 attempts", res, err)
			}
			if !failed.Load() {
				t.Fatal("the fault was not injected")
			}
			transfertest.AssertBlobVerified(t, dst, l, d)
		})
	}
}

// An Importer over a GCS bucket that does not exist names it.
func TestImportFromMissingBucketNamesIt(t *testing.T) {
	ctx := context.Background()
	_, _, client := hookedGCS(t, "dst")
	src, dst := openBucket(t, client, "gone"), openBucket(t, client, "dst")
	tr := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, SourceName: "gs://gone"})
	im, err := transfer.NewImporter(src, tr, transfertest.NewMemSink(), transfer.ImportOptions{Retry: fastRetry, SourceName: "gs://gone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Import(ctx); !errors.Is(err, transfer.ErrBucketNotFound) || !strings.Contains(err.Error(), "gs://gone") {
		t.Fatalf("err = %v, want ErrBucketNotFound naming gs://gone", err)
	}
}

// A source description damaged on the way (here its CRC32C) makes the
// service's copy look wrong; the copy is removed and the source described
// again, instead of the damaged description failing every attempt as
// corruption at rest.
func TestGarbledSourceDescriptionIsReadAgain(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	_, h, client := hookedGCS(t, "src", "dst")
	src, dst := openBucket(t, client, "src"), openBucket(t, client, "dst")
	d := transfertest.PutBlob(t, src, l, transfertest.RandomBytes(9, 61613))
	var garbled atomic.Bool
	h.hook = func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/b/src/o/") || req.URL.Query().Get("alt") == "media" {
			return resp, err
		}
		if !garbled.CompareAndSwap(false, true) {
			return resp, err
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		body["crc32c"] = "AAAAAA=="
		return jsonResponse(req, resp.StatusCode, body), nil
	}
	res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}).Transfer(ctx, d)
	if !garbled.Load() {
		t.Fatal("no source description was garbled")
	}
	if err != nil || !res.ServerSide || res.Attempts != 2 {
		t.Fatalf("Transfer = %+v, %v; want a server-side copy on the second attempt", res, err)
	}
	if res.HostBytes != 61613 {
		t.Fatalf("HostBytes = %d: the verified source (same generation) was read again", res.HostBytes)
	}
	transfertest.AssertBlobVerified(t, dst, l, d)
}
