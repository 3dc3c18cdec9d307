package transfer_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
)

// fastRetry keeps retrying tests quick.
var fastRetry = transfer.RetryPolicy{MaxAttempts: 6, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func mustLayout(t testing.TB, root string) transfer.Layout {
	t.Helper()
	l, err := transfer.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustNew(t testing.TB, src, dst transfer.Bucket, opts transfer.Options) transfer.Transferer {
	t.Helper()
	tr, err := transfer.New(src, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// memBucket is a memblob bucket through the gocloud adapter.
func memBucket(t testing.TB) *gocloudblob.Bucket {
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = b.Close() })
	return gocloudblob.New(b)
}

// fileBucket is a fileblob bucket (no_tmp_dir) through the gocloud
// adapter.
func fileBucket(t testing.TB, dir string) *gocloudblob.Bucket {
	t.Helper()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return gocloudblob.New(b)
}

func TestTransfererMemblob(t *testing.T) {
	transfertest.RunTransfererTests(t, func(t *testing.T) transfertest.TransfererHarness {
		src, dst := memBucket(t), memBucket(t)
		return transfertest.TransfererHarness{
			Transferer: mustNew(t, src, dst, transfer.Options{}),
			Src:        src, Dst: dst, Layout: mustLayout(t, ""),
		}
	})
}

func TestTransfererFileblob(t *testing.T) {
	transfertest.RunTransfererTests(t, func(t *testing.T) transfertest.TransfererHarness {
		src, dst := fileBucket(t, t.TempDir()), fileBucket(t, t.TempDir())
		return transfertest.TransfererHarness{
			Transferer: mustNew(t, src, dst, transfer.Options{Root: "custom/root", BufferSize: 64 << 10}),
			Src:        src, Dst: dst, Layout: mustLayout(t, "custom/root"),
		}
	})
}

// Every operation fails twice (503), and every read is cut short twice
// more, yet every transfer completes and verifies.
func TestTransfererFlakyBuckets(t *testing.T) {
	transfertest.RunTransfererTests(t, func(t *testing.T) transfertest.TransfererHarness {
		rawSrc, rawDst := memBucket(t), memBucket(t)
		src, _ := faultblob.Wrap(rawSrc, faultblob.Options{Inject: func(op faultblob.Op, key string, call int) faultblob.Fault {
			switch {
			case call == 1:
				return faultblob.Unavailable
			case op == faultblob.OpRead && call == 2:
				return faultblob.TruncateRead
			case op == faultblob.OpRead && call == 3:
				return faultblob.ResetRead
			}
			return faultblob.None
		}})
		dst, _ := faultblob.Wrap(rawDst, faultblob.Options{Inject: faultblob.FailFirst(1, faultblob.TooManyRequests)})
		return transfertest.TransfererHarness{
			Transferer: mustNew(t, src, dst, transfer.Options{Retry: fastRetry, BufferSize: 32 << 10}),
			Src:        rawSrc, Dst: rawDst, Layout: mustLayout(t, ""),
		}
	})
}

func TestTransferCorruptLargeBlobLeavesNoFiles(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := fileBucket(t, srcDir), fileBucket(t, dstDir)
	l := mustLayout(t, "")
	data := transfertest.RandomBytes(9, 1<<20)
	d := digest.FromBytes(data)
	data[len(data)-1] ^= 0x80 // corrupt the last chunk, after most bytes were written
	if err := transfertest.WriteObject(ctx, src, l.BlobKey(d), data); err != nil {
		t.Fatal(err)
	}
	tr := mustNew(t, src, dst, transfer.Options{BufferSize: 16 << 10})
	_, err := tr.Transfer(ctx, d)
	if !errors.Is(err, transfer.ErrCorrupt) || !strings.Contains(err.Error(), string(d)) {
		t.Fatalf("err = %v, want ErrCorrupt naming %s", err, d)
	}
	var files []string
	_ = filepath.WalkDir(dstDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("destination holds files after an aborted copy: %v", files)
	}
}

// A read damaged on the way (defect 5 of issue 14) is read again, up to
// CorruptRetries more times, and only then fails, as "in transit"; the
// retries are classified "corrupt".
func TestTransferCorruptReadIsRetriedBounded(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	for _, tc := range []struct {
		name      string
		faults    int
		size      int
		wantErr   error
		wantTries int
	}{
		{"one flip, small blob", 1, 10_000, nil, 2},
		{"two flips, pipelined blob", 2, 300_000, nil, 3},
		{"three flips", 3, 10_000, transfer.ErrCorruptInTransit, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, dst := memBucket(t), memBucket(t)
			d := transfertest.PutBlob(t, raw, l, transfertest.RandomBytes(4, tc.size))
			src, _ := faultblob.Wrap(raw, faultblob.Options{Inject: faultblob.FailFirst(tc.faults, faultblob.CorruptRead, faultblob.OpRead)})
			var causes []transfer.RetryCause
			res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry, BufferSize: 64 << 10,
				Observer: transfer.ObserverFuncs{OnRetried: func(_ context.Context, e transfer.RetryEvent) { causes = append(causes, e.Cause) }}}).Transfer(ctx, d)
			if tc.wantErr == nil {
				if err != nil || res.Attempts != tc.wantTries || res.Skipped {
					t.Fatalf("Transfer = %+v, %v; want a copy in %d attempts", res, err, tc.wantTries)
				}
				transfertest.AssertBlobVerified(t, dst, l, d)
			} else {
				if !errors.Is(err, transfer.ErrCorrupt) || !errors.Is(err, tc.wantErr) || errors.Is(err, transfer.ErrCorruptAtRest) || !strings.Contains(err.Error(), d.String()) {
					t.Fatalf("err = %v, want ErrCorrupt in transit naming %s", err, d)
				}
				if ok, _ := transfertest.Exists(ctx, dst, l.BlobKey(d)); ok {
					t.Fatal("corrupt read landed at the destination")
				}
			}
			for _, c := range causes {
				if c != transfer.RetryCorrupt {
					t.Fatalf("retry causes = %v, want only %q", causes, transfer.RetryCorrupt)
				}
			}
		})
	}
}

// A source object that is corrupt at rest is read 1+CorruptRetries times,
// always with the same wrong content, and reported "at rest".
func TestTransferCorruptAtRest(t *testing.T) {
	ctx := context.Background()
	l := mustLayout(t, "")
	raw, dst := memBucket(t), memBucket(t)
	d := digest.FromString("layer bytes")
	if err := transfertest.WriteObject(ctx, raw, l.BlobKey(d), []byte("LAYER BYTES")); err != nil {
		t.Fatal(err)
	}
	src, stats := faultblob.Wrap(raw, faultblob.Options{})
	res, err := mustNew(t, src, dst, transfer.Options{Retry: fastRetry}).Transfer(ctx, d)
	if !errors.Is(err, transfer.ErrCorruptAtRest) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("err = %v, want ErrCorruptAtRest naming %s", err, d)
	}
	if res.Attempts != 3 || stats.Ops(faultblob.OpRead) != 3 || res.Skipped {
		t.Fatalf("result %+v after %d reads; want 3 attempts and reads", res, stats.Ops(faultblob.OpRead))
	}
}

func TestTransferGivesUpAfterMaxAttempts(t *testing.T) {
	ctx := context.Background()
	raw, rawDst := memBucket(t), memBucket(t)
	l := mustLayout(t, "")
	d := transfertest.PutBlob(t, raw, l, []byte("layer"))
	dst, stats := faultblob.Wrap(rawDst, faultblob.Options{Inject: faultblob.FailFirst(100, faultblob.Unavailable, faultblob.OpWrite)})
	res, err := mustNew(t, raw, dst, transfer.Options{Retry: transfer.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond}}).Transfer(ctx, d)
	var fe *faultblob.Error
	if !errors.As(err, &fe) || fe.Status != 503 {
		t.Fatalf("err = %v, want the injected 503", err)
	}
	if res.Attempts != 3 || stats.Ops(faultblob.OpWrite) != 3 {
		t.Fatalf("attempts = %d, writes = %d; want 3 and 3", res.Attempts, stats.Ops(faultblob.OpWrite))
	}
	if ok, _ := transfertest.Exists(ctx, rawDst, l.BlobKey(d)); ok {
		t.Fatal("a failed commit landed")
	}
}

func TestTransferHonoursContextDuringBackoff(t *testing.T) {
	raw, dst := memBucket(t), memBucket(t)
	l := mustLayout(t, "")
	d := transfertest.PutBlob(t, raw, l, []byte("layer"))
	src, _ := faultblob.Wrap(raw, faultblob.Options{Inject: faultblob.FailFirst(100, faultblob.Unavailable)})
	tr := mustNew(t, src, dst, transfer.Options{Retry: transfer.RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := tr.Transfer(ctx, d); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Transfer ignored its context while backing off")
	}
}

func TestTransferOverwritesWrongSizeDestination(t *testing.T) {
	ctx := context.Background()
	src, dst := memBucket(t), memBucket(t)
	l := mustLayout(t, "")
	data := []byte("the real layer")
	d := transfertest.PutBlob(t, src, l, data)
	if err := transfertest.WriteObject(ctx, dst, l.BlobKey(d), []byte("partial")); err != nil {
		t.Fatal(err)
	}
	res, err := mustNew(t, src, dst, transfer.Options{}).Transfer(ctx, d)
	if err != nil || res.Skipped {
		t.Fatalf("Transfer = %+v, %v; want a copy", res, err)
	}
	got, _ := transfertest.ReadObject(ctx, dst, l.BlobKey(d))
	if string(got) != string(data) {
		t.Fatalf("destination = %q", got)
	}
}

func TestNewRejectsBadRoot(t *testing.T) {
	for _, root := range []string{"a/../b", "/abs", "a//b", "./x"} {
		if _, err := transfer.New(memBucket(t), memBucket(t), transfer.Options{Root: root}); !errors.Is(err, transfer.ErrInvalidPath) {
			t.Errorf("New(root %q): err = %v, want ErrInvalidPath", root, err)
		}
	}
}
