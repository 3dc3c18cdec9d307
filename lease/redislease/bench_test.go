package redislease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/redislease"
)

// BenchmarkAcquireRelease compares an uncontended Acquire+Release with two
// PINGs on the same client, and prints the ratio. It also compares them
// with two plain SET ... PX writes, the least two writes cost.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	client := newClient(b, redistest.New(b).Options())
	lk := redislease.New(client, redislease.Options{})
	ferry := func() {
		l, err := lk.Acquire(ctx, "bench", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	baseline := func() {
		for range 2 {
			if err := client.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	writes := func() {
		for range 2 {
			if err := client.Set(ctx, "bench:write", "x", time.Minute).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("ferry", func(b *testing.B) {
		for b.Loop() {
			ferry()
		}
	})
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			baseline()
		}
	})
	// The ratio compares medians of interleaved samples, so that all see
	// the same machine load.
	m := leasetest.Medians(5000, ferry, baseline, writes)
	f, base, w := m[0], m[1], m[2]
	fmt.Printf("ferry-bench: redislease-acquire-release ferry=%s baseline=%s ratio=%.2f target<=1.3 (Acquire+Release vs two PINGs on the same client)\n",
		f, base, float64(f)/float64(base))
	fmt.Printf("ferry-bench: redislease-acquire-release-vs-writes ferry=%s baseline=%s ratio=%.2f (Acquire+Release vs two SET PX writes)\n",
		f, w, float64(f)/float64(w))
}

func BenchmarkContended(b *testing.B) {
	lk := redislease.New(newClient(b, redistest.New(b).Options()), redislease.Options{})
	r := leasetest.BenchContended(b, lk, "bench", 50)
	fmt.Printf("ferry-bench: redislease-contended-acquire %s (go-redis default pool)\n", r)
}
