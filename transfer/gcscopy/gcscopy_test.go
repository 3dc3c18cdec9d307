package gcscopy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
)

func TestTransfererGCSServerSide(t *testing.T) {
	transfertest.RunTransfererTests(t, func(t *testing.T) transfertest.TransfererHarness {
		gcs := gcstest.NewFakeGCS(t, "src", "dst")
		src, dst := gcs.Bucket(t, "src"), gcs.Bucket(t, "dst")
		return transfertest.TransfererHarness{
			Transferer: mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}),
			Src:        src, Dst: dst, Layout: mustLayout(t, ""), ServerSide: true,
		}
	})
}

func TestTransfererGCSServerSideTrusted(t *testing.T) {
	transfertest.RunTransfererTests(t, func(t *testing.T) transfertest.TransfererHarness {
		gcs := gcstest.NewFakeGCS(t, "src", "dst")
		src, dst := gcs.Bucket(t, "src"), gcs.Bucket(t, "dst")
		return transfertest.TransfererHarness{
			Transferer: mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst), ServerSideVerify: transfer.TrustChecksums}),
			Src:        src, Dst: dst, Layout: mustLayout(t, ""), ServerSide: true, TrustsSource: true,
		}
	})
}

func TestTransfererGCSStreamed(t *testing.T) {
	transfertest.RunTransfererTests(t, func(t *testing.T) transfertest.TransfererHarness {
		gcs := gcstest.NewFakeGCS(t, "src", "dst")
		src, dst := gcs.Bucket(t, "src"), gcs.Bucket(t, "dst")
		return transfertest.TransfererHarness{
			Transferer: mustNew(t, src, dst, transfer.Options{Retry: fastRetry}),
			Src:        src, Dst: dst, Layout: mustLayout(t, ""),
		}
	})
}

// In TrustChecksums mode no blob byte passes through the host.
func TestGCSServerSideTrustedMovesNoBlobBytesThroughHost(t *testing.T) {
	ctx := context.Background()
	gcs := gcstest.NewFakeGCS(t, "src", "dst")
	src, dst := gcs.Bucket(t, "src"), gcs.Bucket(t, "dst")
	l := mustLayout(t, "")
	var digests []digest.Digest
	for i := range 5 {
		digests = append(digests, transfertest.PutBlob(t, src, l, transfertest.RandomBytes(uint64(i), 300_000)))
	}
	tr := mustNew(t, src, dst, transfer.Options{ServerSide: mustCopier(t, src, dst), ServerSideVerify: transfer.TrustChecksums})
	gcs.Traffic.Reset()
	for _, d := range digests {
		res, err := tr.Transfer(ctx, d)
		if err != nil || !res.ServerSide {
			t.Fatalf("Transfer = %+v, %v; want server-side", res, err)
		}
	}
	if got := gcs.Traffic.PayloadBytes(); got != 0 {
		t.Fatalf("%d blob bytes passed through the host, want 0", got)
	}
	if got := gcs.Traffic.Rewrites(); got != int64(len(digests)) {
		t.Fatalf("rewrite calls = %d, want %d", got, len(digests))
	}
	for _, d := range digests {
		transfertest.AssertBlobVerified(t, dst, l, d)
	}
}

// scriptedRewrites lets a test replace the responses to rewrite calls.
type scriptedRewrites struct {
	next http.RoundTripper
	mu   sync.Mutex
	// script[i] handles the i-th rewrite call; nil passes it through.
	script []func(req *http.Request, next http.RoundTripper) (*http.Response, error)
	calls  []*http.Request
}

func (s *scriptedRewrites) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.Contains(req.URL.Path, "/rewriteTo/") {
		return s.next.RoundTrip(req)
	}
	s.mu.Lock()
	i := len(s.calls)
	s.calls = append(s.calls, req)
	var step func(*http.Request, http.RoundTripper) (*http.Response, error)
	if i < len(s.script) {
		step = s.script[i]
	}
	s.mu.Unlock()
	if step == nil {
		return s.next.RoundTrip(req)
	}
	return step(req, s.next)
}

func jsonResponse(req *http.Request, status int, body any) *http.Response {
	p, _ := json.Marshal(body)
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Request: req,
		Header: http.Header{"Content-Type": []string{"application/json"}},
		Body:   io.NopCloser(bytes.NewReader(p)), ContentLength: int64(len(p)),
	}
}

func scriptedGCS(t *testing.T, script ...func(*http.Request, http.RoundTripper) (*http.Response, error)) (*scriptedRewrites, transfer.Bucket, transfer.Bucket) {
	t.Helper()
	gcs := gcstest.NewFakeGCS(t, "src", "dst")
	rt := &scriptedRewrites{next: gcs.Server.HTTPClient().Transport, script: script}
	client := newClient(t, rt)
	return rt, openBucket(t, client, "src"), openBucket(t, client, "dst")
}

// newClient returns a GCS client whose requests go through rt.
func newClient(t testing.TB, rt http.RoundTripper) *storage.Client {
	t.Helper()
	client, err := storage.NewClient(context.Background(), option.WithHTTPClient(&http.Client{Transport: rt}), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// openBucket opens a gcsblob bucket on client.
func openBucket(t testing.TB, client *storage.Client, name string) transfer.Bucket {
	t.Helper()
	b, err := gcsblob.OpenBucket(context.Background(), nil, name, &gcsblob.Options{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return gocloudblob.New(b)
}

// A large rewrite hands out a token, the next call fails with a 503, and
// the retry resumes with the token instead of starting over.
func TestGCSRewriteResumesWithTokenAfter503(t *testing.T) {
	ctx := context.Background()
	partial := func(req *http.Request, _ http.RoundTripper) (*http.Response, error) {
		return jsonResponse(req, 200, map[string]any{
			"kind": "storage#rewriteResponse", "totalBytesRewritten": "1048576",
			"objectSize": "3000000", "done": false, "rewriteToken": "token-1",
		}), nil
	}
	unavailable := func(req *http.Request, _ http.RoundTripper) (*http.Response, error) {
		return jsonResponse(req, 503, map[string]any{"error": map[string]any{"code": 503, "message": "Service Unavailable"}}), nil
	}
	rt, src, dst := scriptedGCS(t, partial, unavailable)
	l := mustLayout(t, "")
	d := transfertest.PutBlob(t, src, l, transfertest.RandomBytes(7, 3_000_000))
	res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}).Transfer(ctx, d)
	if err != nil || !res.ServerSide || res.Attempts != 2 {
		t.Fatalf("Transfer = %+v, %v; want server-side in 2 attempts", res, err)
	}
	if len(rt.calls) != 3 {
		t.Fatalf("rewrite calls = %d, want 3", len(rt.calls))
	}
	for i, want := range []string{"", "token-1", "token-1"} {
		if got := rt.calls[i].URL.Query().Get("rewriteToken"); got != want {
			t.Errorf("rewrite call %d carried token %q, want %q", i+1, got, want)
		}
	}
	transfertest.AssertBlobVerified(t, dst, l, d)
}

// A copy whose CRC32C disagrees with the source is removed and retried; if
// it keeps happening the transfer fails with ErrCorrupt and leaves nothing.
func TestGCSRewriteChecksumMismatchIsRemoved(t *testing.T) {
	ctx := context.Background()
	badCRC := func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return nil, err
		}
		body["resource"].(map[string]any)["crc32c"] = "AAAAAA=="
		return jsonResponse(req, resp.StatusCode, body), nil
	}
	l := mustLayout(t, "")

	_, src, dst := scriptedGCS(t, badCRC)
	d := transfertest.PutBlob(t, src, l, []byte("config blob"))
	res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}).Transfer(ctx, d)
	if err != nil || res.Attempts != 2 || !res.ServerSide {
		t.Fatalf("one bad copy: Transfer = %+v, %v; want a server-side copy on the second attempt", res, err)
	}
	transfertest.AssertBlobVerified(t, dst, l, d)

	_, src, dst = scriptedGCS(t, badCRC, badCRC, badCRC)
	d = transfertest.PutBlob(t, src, l, []byte("config blob"))
	_, err = mustNew(t, src, dst, transfer.Options{Retry: fastRetry, ServerSide: mustCopier(t, src, dst)}).Transfer(ctx, d)
	if !errors.Is(err, transfer.ErrCorrupt) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("err = %v, want ErrCorrupt naming %s", err, d)
	}
	if ok, _ := transfertest.Exists(ctx, dst, l.BlobKey(d)); ok {
		t.Fatal("a copy with the wrong checksum was left at the destination")
	}
}

// A source read that fails with a 503 keeps its status through io.Copy:
// the reader does not expose storage.Reader's WriteTo, which would bypass
// the classification.
func TestReadSourceErrorKeepsStatusThroughCopy(t *testing.T) {
	ctx := context.Background()
	_, h, client := hookedGCS(t, "src", "dst")
	src, dst := openBucket(t, client, "src"), openBucket(t, client, "dst")
	if err := transfertest.WriteObject(ctx, src, "k", bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	c := mustCopier(t, src, dst)
	v, err := c.Source(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// The download's body breaks after 4 bytes; the client's reopen of
	// the rest gets a 503.
	var downloads atomic.Int32
	h.hook = func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		if req.Method != http.MethodGet || (req.URL.Query().Get("alt") != "media" && strings.HasPrefix(req.URL.Path, "/storage/v1/")) {
			return next.RoundTrip(req)
		}
		if downloads.Add(1) > 1 {
			return jsonResponse(req, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"code": 503, "message": "backend error"}}), nil
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(io.MultiReader(strings.NewReader("xxxx"), iotest.ErrReader(io.ErrUnexpectedEOF)))
		return resp, nil
	}
	r, err := c.ReadSource(ctx, "k", v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(io.WriterTo); ok {
		t.Error("ReadSource's reader implements io.WriterTo, which bypasses its error classification")
	}
	_, err = io.Copy(io.Discard, r)
	if sc, ok := errors.AsType[interface {
		error
		HTTPStatusCode() int
	}](err); !ok || sc.HTTPStatusCode() != http.StatusServiceUnavailable || !transfer.IsRetryable(err) {
		t.Fatalf("io.Copy from a source read failing with a 503: %v, want an error with HTTPStatusCode 503", err)
	}
}
