package transfertest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/opencontainers/go-digest"
)

// TransfererHarness is what RunTransfererTests needs for one test: a
// Transferer and the buckets and layout it copies between.
type TransfererHarness struct {
	Transferer transfer.Transferer
	Src, Dst   transfer.Bucket
	Layout     transfer.Layout
	// ServerSide says the Transferer copies inside the storage service
	// (Result.ServerSide is expected on copies).
	ServerSide bool
	// TrustsSource says the Transferer does not check content against the
	// digest (transfer.TrustChecksums): a corrupt source object is then
	// copied as is, and that subtest only logs.
	TrustsSource bool
}

// RunTransfererTests checks the Transferer contract: verified copies, skip
// when present, ErrCorrupt (at rest, naming the digest) with nothing
// written, same-size corrupt destination objects replaced, ErrMissingBlob,
// ErrInvalidDigest, empty, multi-chunk and sha512 blobs, and concurrent
// transfers of one digest. newHarness is called once per subtest with empty buckets.
func RunTransfererTests(t *testing.T, newHarness func(t *testing.T) TransfererHarness) {
	t.Helper()
	ctx := context.Background()

	t.Run("CopiesAndSkips", func(t *testing.T) {
		h := newHarness(t)
		data := RandomBytes(1, 70_000)
		d := PutBlob(t, h.Src, h.Layout, data)
		res, err := h.Transferer.Transfer(ctx, d)
		if err != nil {
			t.Fatalf("Transfer: %v", err)
		}
		if res.Digest != d || res.Bytes != int64(len(data)) || res.Skipped || res.ServerSide != h.ServerSide || res.Attempts < 1 {
			t.Fatalf("first Transfer result = %+v", res)
		}
		assertBlob(t, h.Dst, h.Layout, d, data)
		res, err = h.Transferer.Transfer(ctx, d)
		if err != nil {
			t.Fatalf("second Transfer: %v", err)
		}
		if !res.Skipped || res.Bytes != int64(len(data)) {
			t.Fatalf("second Transfer result = %+v, want skipped", res)
		}
	})

	t.Run("EmptyAndLargeBlobs", func(t *testing.T) {
		h := newHarness(t)
		for _, size := range []int{0, 1, 3<<20 + 17} {
			data := RandomBytes(uint64(size), size)
			d := PutBlob(t, h.Src, h.Layout, data)
			if _, err := h.Transferer.Transfer(ctx, d); err != nil {
				t.Fatalf("Transfer of %d bytes: %v", size, err)
			}
			assertBlob(t, h.Dst, h.Layout, d, data)
		}
	})

	t.Run("CorruptSourceLandsNothing", func(t *testing.T) {
		h := newHarness(t)
		data := RandomBytes(2, 5000)
		d := digest.FromBytes(data)
		bad := bytes.Clone(data)
		bad[2500] ^= 1
		if err := WriteObject(ctx, h.Src, h.Layout.BlobKey(d), bad); err != nil {
			t.Fatal(err)
		}
		_, err := h.Transferer.Transfer(ctx, d)
		if h.TrustsSource {
			t.Logf("a Transferer that trusts the source copied a corrupt object as is (err=%v)", err)
			return
		}
		if !errors.Is(err, transfer.ErrCorrupt) || !errors.Is(err, transfer.ErrCorruptAtRest) || !strings.Contains(err.Error(), d.String()) {
			t.Fatalf("Transfer of corrupt blob: err = %v, want ErrCorrupt (at rest) naming the digest", err)
		}
		if ok, _ := Exists(ctx, h.Dst, h.Layout.BlobKey(d)); ok {
			t.Fatal("corrupt blob landed at the destination")
		}
		// Longer and shorter content under the digest is refused too.
		for _, content := range [][]byte{data[:len(data)-1], append(bytes.Clone(data), 'x')} {
			if err := WriteObject(ctx, h.Src, h.Layout.BlobKey(d), content); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Transferer.Transfer(ctx, d); !errors.Is(err, transfer.ErrCorrupt) {
				t.Fatalf("Transfer of %d bytes under a %d-byte digest: err = %v, want ErrCorrupt", len(content), len(data), err)
			}
			if ok, _ := Exists(ctx, h.Dst, h.Layout.BlobKey(d)); ok {
				t.Fatal("corrupt blob landed at the destination")
			}
		}
	})

	t.Run("ExistingCorruptSameSizeIsReplaced", func(t *testing.T) {
		h := newHarness(t)
		for i, size := range []int{4096, 3<<20 + 1} {
			data := RandomBytes(uint64(10+i), size)
			d := PutBlob(t, h.Src, h.Layout, data)
			bad := bytes.Clone(data)
			bad[size/2] ^= 0x40
			if err := WriteObject(ctx, h.Dst, h.Layout.BlobKey(d), bad); err != nil {
				t.Fatal(err)
			}
			res, err := h.Transferer.Transfer(ctx, d)
			if err != nil {
				t.Fatalf("Transfer over a corrupt destination object: %v", err)
			}
			if res.Skipped || !res.Replaced {
				t.Fatalf("result = %+v, want a replacing copy", res)
			}
			assertBlob(t, h.Dst, h.Layout, d, data)
		}
	})

	t.Run("SHA512", func(t *testing.T) {
		h := newHarness(t)
		data := RandomBytes(5, 2<<20+3)
		d := digest.SHA512.FromBytes(data)
		if err := WriteObject(ctx, h.Src, h.Layout.BlobKey(d), data); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Transferer.Transfer(ctx, d); err != nil {
			t.Fatalf("Transfer of a sha512 blob: %v", err)
		}
		assertBlob(t, h.Dst, h.Layout, d, data)
		AssertBlobVerified(t, h.Dst, h.Layout, d)
	})

	t.Run("MissingBlob", func(t *testing.T) {
		h := newHarness(t)
		_, err := h.Transferer.Transfer(ctx, digest.FromBytes([]byte("not there")))
		if !errors.Is(err, transfer.ErrMissingBlob) {
			t.Fatalf("err = %v, want ErrMissingBlob", err)
		}
	})

	t.Run("InvalidDigest", func(t *testing.T) {
		h := newHarness(t)
		for _, d := range []digest.Digest{"", "sha256:abc", digest.Digest("sha512:" + digest.FromBytes(nil).Encoded()), "sha256:../../../../etc/passwd"} {
			if _, err := h.Transferer.Transfer(ctx, d); !errors.Is(err, transfer.ErrInvalidDigest) {
				t.Errorf("Transfer(%q): err = %v, want ErrInvalidDigest", d, err)
			}
		}
	})

	t.Run("ConcurrentSameDigest", func(t *testing.T) {
		h := newHarness(t)
		data := RandomBytes(3, 200_000)
		d := PutBlob(t, h.Src, h.Layout, data)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				if _, err := h.Transferer.Transfer(ctx, d); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Transfer: %v", err)
		}
		assertBlob(t, h.Dst, h.Layout, d, data)
	})
}

// RandomBytes returns n deterministic pseudo-random bytes for seed.
func RandomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// PutBlob stores data as a blob in the layout and returns its digest.
func PutBlob(t testing.TB, b transfer.Bucket, l transfer.Layout, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	if err := WriteObject(context.Background(), b, l.BlobKey(d), data); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	return d
}

func assertBlob(t *testing.T, b transfer.Bucket, l transfer.Layout, d digest.Digest, want []byte) {
	t.Helper()
	got, err := ReadObject(context.Background(), b, l.BlobKey(d))
	if err != nil {
		t.Fatalf("reading %s at destination: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("blob %s at destination differs from source (%d vs %d bytes)", d, len(got), len(want))
	}
}

// AssertBlobVerified fails the test unless the blob d exists in b and its
// content hashes to d.
func AssertBlobVerified(t testing.TB, b transfer.Bucket, l transfer.Layout, d digest.Digest) {
	t.Helper()
	got, err := ReadObject(context.Background(), b, l.BlobKey(d))
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	if sum := d.Algorithm().FromBytes(got); sum != d {
		t.Fatalf("blob %s hashes to %s", d, sum)
	}
}
