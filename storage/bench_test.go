package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferryhq/ferry/storage"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkRoutedRead compares a read through DB.Read (to an up-to-date
// replica, with the sticky-key check) with the same read sent straight to
// that replica through a pool of its own, and prints the ratio: the cost
// of routing. The primary's figure is context: the primary and the
// replica are two server processes on the same cores, and which of them
// is faster changes from run to run (0.76x-1.35x against the primary in
// three runs of the same commit). Even against the same replica, two
// connections' backends differ by up to ~1.5x on two cores, so read the
// ratio as "routing adds nothing measurable", not as a precise figure.
func BenchmarkRoutedRead(b *testing.B) {
	ctx := context.Background()
	db, rep := openReplicated(b, 0)
	replica, err := pgxpool.New(ctx, rep.ReplicaURL)
	if err != nil {
		b.Fatal(err)
	}
	defer replica.Close()
	if _, err := db.Exec(ctx, `INSERT INTO repos VALUES ('a/b', 'default')`); err != nil {
		b.Fatal(err)
	}
	waitReplicated(b, db)
	const query = `SELECT state FROM repos WHERE path = $1`
	read := func(q storage.Querier) {
		var s string
		if err := q.QueryRow(ctx, query, "a/b").Scan(&s); err != nil {
			b.Fatal(err)
		}
	}
	measure := func(n int, fn func()) time.Duration {
		start := time.Now()
		for range n {
			fn()
		}
		return time.Since(start) / time.Duration(n)
	}
	b.Run("primary", func(b *testing.B) {
		for b.Loop() {
			read(db.Primary())
		}
	})
	b.Run("routed", func(b *testing.B) {
		for b.Loop() {
			read(db.Read(ctx, "a/b"))
		}
	})
	// Interleave many short samples of each and compare medians, so both
	// see the same machine load and a stall of either server (two
	// PostgreSQL processes on the same cores) moves neither figure.
	const rounds, per = 41, 200
	var directs, routeds, primaries []time.Duration
	for range rounds {
		directs = append(directs, measure(per, func() { read(replica) }))
		routeds = append(routeds, measure(per, func() { read(db.Read(ctx, "a/b")) }))
		primaries = append(primaries, measure(per, func() { read(db.Primary()) }))
	}
	median := func(ds []time.Duration) time.Duration { slices.Sort(ds); return ds[len(ds)/2] }
	direct, routed, primary := median(directs), median(routeds), median(primaries)
	fmt.Printf("ferry-bench: storage-routed-read ferry=%s baseline=%s ratio=%.2f target<=1.2 primary=%s (routed read to the replica vs the same read on a pool of the replica's own; medians of %d interleaved rounds of %d)\n",
		routed, direct, float64(routed)/float64(direct), primary, rounds, per)
}
