package pglease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
)

// BenchmarkAcquireRelease compares an uncontended Acquire+Release with two
// `SELECT 1` round trips on the same pool, and prints the ratio. Acquire
// and Release are writes, each its own transaction, so it also compares
// them with two single-row UPDATEs: the least that two committed writes
// cost on this server.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.Pool(b)
	lk := pglease.New(pool, pglease.Options{})
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
		var n int
		for range 2 {
			if err := pool.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_row (id int PRIMARY KEY, n bigint) WITH (fillfactor = 50);
		INSERT INTO bench_row VALUES (1, 0)`); err != nil {
		b.Fatal(err)
	}
	writes := func() {
		for range 2 {
			if _, err := pool.Exec(ctx, `UPDATE bench_row SET n = n + 1 WHERE id = 1`); err != nil {
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
	m := leasetest.Medians(2000, ferry, baseline, writes)
	f, base, w := m[0], m[1], m[2]
	fmt.Printf("ferry-bench: pglease-acquire-release ferry=%s baseline=%s ratio=%.2f target<=1.3 (Acquire+Release vs two SELECT 1 round trips on the same pool)\n",
		f, base, float64(f)/float64(base))
	fmt.Printf("ferry-bench: pglease-acquire-release-vs-writes ferry=%s baseline=%s ratio=%.2f (Acquire+Release vs two single-row UPDATEs: the cost of two committed writes)\n",
		f, w, float64(f)/float64(w))
}

// BenchmarkContended measures 50 goroutines hammering one key, each with
// its own connection, as 50 processes would.
func BenchmarkContended(b *testing.B) {
	pool := newPool(b, pgtest.URL(b), func(c *pgxpool.Config) { c.MaxConns = 50 })
	r := leasetest.BenchContended(b, pglease.New(pool, pglease.Options{}), "bench", 50)
	fmt.Printf("ferry-bench: pglease-contended-acquire %s (a connection each)\n", r)
}
