package pglease_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// BenchmarkAcquireRelease compares an uncontended Acquire+Release with two
// committed single-row HOT UPDATEs on the same pool (issue 16's target),
// and, to show where the time goes, with two `SELECT 1` round trips and
// two transactions that only commit. The baselines' statements are
// prepared, as pglease's are, so they go through Query: pgx sends an Exec
// without arguments as a simple query, parsed and planned every time.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	pool := storagetest.Pool(b)
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_row (id int PRIMARY KEY, n bigint) WITH (fillfactor = 50);
		INSERT INTO bench_row VALUES (1, 0)`); err != nil {
		b.Fatal(err)
	}
	twice := func(sql string) func(*testing.B) {
		return func(b *testing.B) {
			for range 2 {
				rows, err := pool.Query(ctx, sql)
				if err == nil {
					rows.Close()
					err = rows.Err()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	leasetest.BenchAcquireRelease(b, pglease.New(storage.FromPool(pool), pglease.Options{}), "bench", 2000,
		leasetest.Baseline{Name: "select1", Line: "pglease-acquire-release", Target: 1.3, Run: twice("SELECT 1"),
			Note: "Acquire+Release vs two SELECT 1 round trips on the same pool"},
		leasetest.Baseline{Name: "commits", Line: "pglease-acquire-release-vs-commits", Run: twice("SELECT txid_current()"),
			Note: "vs two transactions that take a transaction id and commit, writing no row"},
		leasetest.Baseline{Name: "updates", Line: "pglease-acquire-release-vs-updates", Target: 1.15, Run: twice("UPDATE bench_row SET n = n + 1 WHERE id = 1"),
			Note: "vs two single-row HOT UPDATEs: the least two committed writes cost (issue 16's target)"},
	)
}

// BenchmarkContended measures 50 goroutines hammering one key, each with
// its own connection, as 50 processes would.
func BenchmarkContended(b *testing.B) {
	pool := newPool(b, storagetest.URL(b), func(c *pgxpool.Config) { c.MaxConns = 50 })
	r := leasetest.BenchContended(b, pglease.New(storage.FromPool(pool), pglease.Options{}), "bench", 50)
	fmt.Printf("ferry-bench: pglease-contended-acquire %s (a connection each)\n", r)
}
