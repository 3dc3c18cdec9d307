package gocloudblob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/opencontainers/go-digest"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/memblob"
	"google.golang.org/api/option"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestBucketSuite(t *testing.T) {
	t.Run("memblob", func(t *testing.T) {
		transfertest.BucketSuite(t, func(t *testing.T) transfer.Bucket {
			b := memblob.OpenBucket(nil)
			t.Cleanup(func() { _ = b.Close() })
			return gocloudblob.New(b)
		})
	})
	for _, noTmp := range []bool{false, true} {
		t.Run(fmt.Sprintf("fileblob/no_tmp_dir=%v", noTmp), func(t *testing.T) {
			transfertest.BucketSuite(t, func(t *testing.T) transfer.Bucket {
				b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{NoTempDir: noTmp})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
				return gocloudblob.New(b)
			})
		})
	}
	t.Run("gcsblob", func(t *testing.T) {
		// Over loopback HTTP rather than gcstest's in-process transport,
		// which completes a request whose context was cancelled (so an
		// abandoned upload would commit there, unlike on the real service).
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		host := fmt.Sprintf("127.0.0.1:%d", port)
		srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: uint16(port), PublicHost: host})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		t.Setenv("STORAGE_EMULATOR_HOST", host)
		client, err := storage.NewClient(context.Background(), option.WithoutAuthentication())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		n := 0
		transfertest.BucketSuite(t, func(t *testing.T) transfer.Bucket {
			n++
			name := fmt.Sprintf("suite-%d", n)
			srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
			b, err := gcsblob.OpenBucket(context.Background(), nil, name, &gcsblob.Options{Client: client})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return gocloudblob.New(b)
		})
	})
}

// A bucket that does not exist fails List with transfer.ErrNotExist, so
// that transfer can report a *transfer.BucketError naming it. (fileblob
// lists a missing directory as empty, as gocloud's IsAccessible sees it:
// its objects are then reported missing.)
func TestMissingBucket(t *testing.T) {
	ctx := context.Background()
	gcs := gcstest.NewFakeGCS(t)
	for name, b := range map[string]transfer.Bucket{
		"gcsblob": gcs.Bucket(t, "no-such-bucket"),
	} {
		if _, err := b.List(ctx, transfer.ListOptions{PageSize: 1}); !errors.Is(err, transfer.ErrNotExist) {
			t.Errorf("%s: List of a missing bucket: %v, want ErrNotExist", name, err)
		}
		tr, err := transfer.New(b, b, transfer.Options{SourceName: "gs://" + name})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Transfer(ctx, digest.FromString("absent"))
		if be, ok := errors.AsType[*transfer.BucketError](err); !ok || be.Bucket != "gs://"+name {
			t.Errorf("%s: Transfer from a missing bucket: %v, want a *BucketError naming it", name, err)
		}
	}
}

// Unwrap finds the *blob.Bucket behind the adapter, through wrappers.
func TestUnwrap(t *testing.T) {
	mem := memblob.OpenBucket(nil)
	defer mem.Close()
	a := gocloudblob.New(mem)
	wrapped, _ := faultblob.Wrap(a, faultblob.Options{})
	for _, b := range []transfer.Bucket{a, wrapped} {
		if got, ok := gocloudblob.Unwrap(b); !ok || got != mem {
			t.Fatalf("Unwrap(%T) = %v, %v", b, got, ok)
		}
	}
	if _, ok := gocloudblob.Unwrap(transfertest.NewMemBucket()); ok {
		t.Fatal("Unwrap found a *blob.Bucket behind a MemBucket")
	}
	if a.Blob() != mem {
		t.Fatal("Blob() is not the adapted bucket")
	}
}

// roundTripperFunc is an http.RoundTripper.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// A read that fails with a 404 is transfer.ErrNotExist through io.Copy
// too: the reader does not expose blob.Reader's WriteTo, which would
// bypass the adapter's error translation.
func TestReadErrorIsTranslatedThroughCopy(t *testing.T) {
	ctx := context.Background()
	gcs := gcstest.NewFakeGCS(t, "b")
	next := gcs.Server.HTTPClient().Transport
	var downloads atomic.Int32
	var broken atomic.Bool
	// Once broken, the download's body breaks after 4 bytes and the
	// client's reopen of the rest gets a 404 (the object was deleted).
	rt := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		isDownload := req.Method == http.MethodGet && (req.URL.Query().Get("alt") == "media" || !strings.HasPrefix(req.URL.Path, "/storage/v1/"))
		if !isDownload || !broken.Load() {
			return next.RoundTrip(req)
		}
		if downloads.Add(1) > 1 {
			return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Request: req,
				Header: http.Header{"Content-Type": []string{"text/plain"}}, Body: io.NopCloser(strings.NewReader("no such object"))}, nil
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(io.MultiReader(strings.NewReader("xxxx"), iotest.ErrReader(io.ErrUnexpectedEOF)))
		return resp, nil
	})
	client, err := storage.NewClient(ctx, option.WithHTTPClient(&http.Client{Transport: rt}), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	bb, err := gcsblob.OpenBucket(ctx, nil, "b", &gcsblob.Options{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bb.Close() })
	b := gocloudblob.New(bb)
	if err := transfertest.WriteObject(ctx, b, "k", bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	broken.Store(true)
	r, err := b.NewReader(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(io.WriterTo); ok {
		t.Error("the adapter's reader implements io.WriterTo, which bypasses its error translation")
	}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, transfer.ErrNotExist) {
		t.Fatalf("io.Copy from a read failing with a 404: %v, want transfer.ErrNotExist", err)
	}
}
