package faultblob_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func setup(t *testing.T, opts faultblob.Options) (*transfertest.MemBucket, *faultblob.Bucket, *faultblob.Stats) {
	t.Helper()
	inner := transfertest.NewMemBucket()
	b, st := faultblob.Wrap(inner, opts)
	return inner, b, st
}

// With no faults the wrapper is a transfer.Bucket like the one it wraps.
func TestBucketSuite(t *testing.T) {
	transfertest.BucketSuite(t, func(t *testing.T) transfer.Bucket {
		b, _ := faultblob.Wrap(transfertest.NewMemBucket(), faultblob.Options{})
		return b
	})
}

func TestPassThrough(t *testing.T) {
	ctx := context.Background()
	inner, b, st := setup(t, faultblob.Options{})
	if err := transfertest.WriteObject(ctx, b, "dir/a", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := transfertest.ReadObject(ctx, inner, "dir/a")
	if err != nil || string(got) != "hello" {
		t.Fatalf("inner has %q, %v", got, err)
	}
	if got, err := transfertest.ReadObject(ctx, b, "dir/a"); err != nil || string(got) != "hello" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	page, err := b.List(ctx, transfer.ListOptions{Delimiter: "/", PageSize: 10})
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != "dir/" || !page.Objects[0].IsDir {
		t.Fatalf("List = %v, %v", page, err)
	}
	if a, err := b.Attributes(ctx, "dir/a"); err != nil || a.Size != 5 {
		t.Fatalf("Attributes = %+v, %v", a, err)
	}
	if err := b.Delete(ctx, "dir/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Attributes(ctx, "dir/a"); !errors.Is(err, transfer.ErrNotExist) {
		t.Fatalf("Attributes after Delete: %v, want ErrNotExist", err)
	}
	if b.Unwrap() != transfer.Bucket(inner) {
		t.Fatal("Unwrap does not return the wrapped bucket")
	}
	if st.Ops(faultblob.OpWrite) != 1 || st.Ops(faultblob.OpRead) != 1 || st.BytesRead() != 5 || st.BytesWritten() != 5 {
		t.Fatalf("stats: writes %d reads %d read %dB written %dB", st.Ops(faultblob.OpWrite), st.Ops(faultblob.OpRead), st.BytesRead(), st.BytesWritten())
	}
}

func TestFailFirstThenSucceed(t *testing.T) {
	ctx := context.Background()
	_, b, st := setup(t, faultblob.Options{Inject: faultblob.FailFirst(2, faultblob.Unavailable, faultblob.OpAttributes)})
	if err := transfertest.WriteObject(ctx, b, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		_, err := b.Attributes(ctx, "k")
		var fe *faultblob.Error
		switch {
		case i <= 2 && (!errors.As(err, &fe) || fe.HTTPStatusCode() != 503 || !transfer.IsRetryable(err)):
			t.Fatalf("call %d: err = %v, want an injected 503", i, err)
		case i == 3 && err != nil:
			t.Fatalf("call 3: %v", err)
		}
	}
	if st.Faults() != 2 {
		t.Fatalf("faults = %d, want 2", st.Faults())
	}
}

func TestReadFaults(t *testing.T) {
	ctx := context.Background()
	data := []byte("0123456789")
	for _, tc := range []struct {
		fault   faultblob.Fault
		want    string
		wantErr bool
	}{
		{faultblob.TruncateRead, "01234", false},
		{faultblob.ResetRead, "01234", true},
		{faultblob.CorruptRead, "01234\xca6789", false},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			_, b, _ := setup(t, faultblob.Options{Inject: faultblob.FailFirst(1, tc.fault, faultblob.OpRead)})
			if err := transfertest.WriteObject(ctx, b, "k", data); err != nil {
				t.Fatal(err)
			}
			r, err := b.NewReader(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			_ = r.Close()
			if string(got) != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("read %q, %v; want %q (error: %v)", got, err, tc.want, tc.wantErr)
			}
			if r.Size() != int64(len(data)) {
				t.Fatalf("Size = %d, want the full %d", r.Size(), len(data))
			}
			if again, err := transfertest.ReadObject(ctx, b, "k"); err != nil || string(again) != string(data) {
				t.Fatalf("second read = %q, %v", again, err)
			}
		})
	}
}

func TestFailedCommitLandsNothing(t *testing.T) {
	ctx := context.Background()
	inner, b, _ := setup(t, faultblob.Options{Inject: faultblob.FailFirst(1, faultblob.InternalError, faultblob.OpWrite)})
	err := transfertest.WriteObject(ctx, b, "k", []byte("v"))
	if fe, ok := errors.AsType[*faultblob.Error](err); !ok || fe.Status != 500 {
		t.Fatalf("err = %v, want an injected 500", err)
	}
	if ok, _ := transfertest.Exists(ctx, inner, "k"); ok {
		t.Fatal("a failed commit landed")
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	_, b, _ := setup(t, faultblob.Options{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Attributes(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestRandomIsDeterministic(t *testing.T) {
	inj := faultblob.Random(7, 0.5, faultblob.Unavailable)
	hits := 0
	for i := range 1000 {
		key := fmt.Sprintf("key-%d", i)
		f := inj(faultblob.OpRead, key, 1)
		if f != inj(faultblob.OpRead, key, 1) {
			t.Fatal("Random gave two answers for the same call")
		}
		if f != faultblob.None {
			hits++
		}
	}
	if hits < 400 || hits > 600 {
		t.Fatalf("Random(0.5) hit %d of 1000 calls", hits)
	}
}

func Example() {
	ctx := context.Background()
	// Any transfer.Bucket: gocloudblob.New(memblob.OpenBucket(nil)), or
	// transfertest's in-memory one.
	mem := transfertest.NewMemBucket()
	// Every key's first read fails with a 503, and each operation takes 1ms.
	b, stats := faultblob.Wrap(mem, faultblob.Options{
		Latency: time.Millisecond,
		Inject:  faultblob.FailFirst(1, faultblob.Unavailable, faultblob.OpRead),
	})
	_ = transfertest.WriteObject(ctx, b, "greeting", []byte("hello"))
	_, err := transfertest.ReadObject(ctx, b, "greeting")
	fmt.Println("first read:", err != nil)
	data, _ := transfertest.ReadObject(ctx, b, "greeting")
	fmt.Println("second read:", string(data))
	fmt.Println("faults injected:", stats.Faults())
	// Output:
	// first read: true
	// second read: hello
	// faults injected: 1
}

func TestSlowReadStallsOnceAndDeliversEverything(t *testing.T) {
	ctx := context.Background()
	data := []byte("0123456789")
	_, b, st := setup(t, faultblob.Options{
		Inject:        faultblob.FailFirst(1, faultblob.SlowRead, faultblob.OpRead),
		SlowReadDelay: 50 * time.Millisecond,
	})
	if err := transfertest.WriteObject(ctx, b, "k", data); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := transfertest.ReadObject(ctx, b, "k")
	if err != nil || string(got) != string(data) {
		t.Fatalf("read %q, %v; want all of %q", got, err, data)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("a slow read returned after %s, before its stall", waited)
	}
	if st.Faults() != 1 {
		t.Fatalf("faults = %d, want 1", st.Faults())
	}
}

func TestSlowReadHonoursContext(t *testing.T) {
	data := []byte("0123456789")
	_, b, _ := setup(t, faultblob.Options{
		Inject:        faultblob.FailFirst(1, faultblob.SlowRead, faultblob.OpRead),
		SlowReadDelay: time.Hour,
	})
	if err := transfertest.WriteObject(context.Background(), b, "k", data); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := transfertest.ReadObject(ctx, b, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}
