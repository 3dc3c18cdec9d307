package gcstest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"

	"github.com/ferryhq/ferry/transfer/gocloudblob"
)

// FakeGCS is an in-process fake-gcs-server with a storage client whose
// HTTP traffic is counted, so tests can check how many blob bytes passed
// through the host.
type FakeGCS struct {
	Server  *fakestorage.Server
	Client  *storage.Client
	Traffic *HTTPTraffic
}

// NewFakeGCS starts a fake GCS server (no network listener) holding the
// named empty buckets. It is stopped when the test ends.
func NewFakeGCS(t testing.TB, buckets ...string) *FakeGCS {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatalf("starting fake GCS: %v", err)
	}
	t.Cleanup(srv.Stop)
	for _, name := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	}
	traffic := &HTTPTraffic{next: srv.HTTPClient().Transport}
	client, err := storage.NewClient(context.Background(),
		option.WithHTTPClient(&http.Client{Transport: traffic}),
		option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("GCS client: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return &FakeGCS{Server: srv, Client: client, Traffic: traffic}
}

// Bucket opens the named bucket through gcsblob, as a transfer.Bucket
// (its Blob method returns the *blob.Bucket).
func (f *FakeGCS) Bucket(t testing.TB, name string) *gocloudblob.Bucket {
	t.Helper()
	b, err := gcsblob.OpenBucket(context.Background(), nil, name, &gcsblob.Options{Client: f.Client})
	if err != nil {
		t.Fatalf("opening GCS bucket %q: %v", name, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return gocloudblob.New(b)
}

// HTTPTraffic is an http.RoundTripper that counts bytes. Payload bytes are
// object data: upload request bodies and media download responses.
// Everything else (JSON metadata, rewrite calls) is control traffic.
type HTTPTraffic struct {
	next     http.RoundTripper
	requests atomic.Int64
	payload  atomic.Int64
	control  atomic.Int64
	rewrites atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (h *HTTPTraffic) RoundTrip(req *http.Request) (*http.Response, error) {
	h.requests.Add(1)
	upload := strings.HasPrefix(req.URL.Path, "/upload/")
	download := req.Method == http.MethodGet &&
		(req.URL.Query().Get("alt") == "media" || !strings.HasPrefix(req.URL.Path, "/storage/v1/") && !strings.HasPrefix(req.URL.Path, "/b/"))
	if strings.Contains(req.URL.Path, "/rewriteTo/") {
		h.rewrites.Add(1)
	}
	if req.Body != nil {
		counter := &h.control
		if upload {
			counter = &h.payload
		}
		req.Body = &countingBody{ReadCloser: req.Body, n: counter}
	}
	resp, err := h.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	counter := &h.control
	if download && resp.StatusCode < 300 {
		counter = &h.payload
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: counter}
	return resp, nil
}

// Requests returns the number of HTTP requests made.
func (h *HTTPTraffic) Requests() int64 { return h.requests.Load() }

// PayloadBytes returns the object bytes uploaded plus downloaded.
func (h *HTTPTraffic) PayloadBytes() int64 { return h.payload.Load() }

// ControlBytes returns all other body bytes (metadata, rewrite calls).
func (h *HTTPTraffic) ControlBytes() int64 { return h.control.Load() }

// Rewrites returns the number of rewrite (server-side copy) calls.
func (h *HTTPTraffic) Rewrites() int64 { return h.rewrites.Load() }

// Reset zeroes the counters.
func (h *HTTPTraffic) Reset() {
	h.requests.Store(0)
	h.payload.Store(0)
	h.control.Store(0)
	h.rewrites.Store(0)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
