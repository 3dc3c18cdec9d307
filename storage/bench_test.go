package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry/storage"
)

// BenchmarkRoutedRead compares a read through DB.Read (to an up-to-date
// replica, with the sticky-key check) with the same read sent straight to
// the primary's pool, and prints the ratio.
func BenchmarkRoutedRead(b *testing.B) {
	ctx := context.Background()
	db, _ := openReplicated(b, 0)
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
	var direct, routed time.Duration
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
	// Interleave a fixed sample of each for the ratio, so both see the same
	// machine load.
	for range 5 {
		direct += measure(200, func() { read(db.Primary()) })
		routed += measure(200, func() { read(db.Read(ctx, "a/b")) })
	}
	fmt.Printf("ferry-bench: storage-routed-read ferry=%s baseline=%s ratio=%.2f target<=1.2 (routed read to a replica vs direct primary read)\n",
		routed/5, direct/5, float64(routed)/float64(direct))
}
