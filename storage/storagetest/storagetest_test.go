package storagetest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) { storagetest.Main(m) }

func TestURLGivesFreshMigratedDatabase(t *testing.T) {
	ctx := context.Background()
	pool := storagetest.Pool(t)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ferry_schema_migrations`).Scan(&n))
	require.Positive(t, n)
	_, err := pool.Exec(ctx, `CREATE TABLE only_here (id int)`)
	require.NoError(t, err)

	other := storagetest.Pool(t)
	err = other.QueryRow(ctx, `SELECT count(*) FROM only_here`).Scan(&n)
	require.Error(t, err, "databases must not share tables")
}

func TestEmptyURLHasNoSchema(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, storagetest.EmptyURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('ferry_schema_migrations') IS NOT NULL`).Scan(&exists))
	require.False(t, exists)
}

func TestReplicaFollowsWithDelay(t *testing.T) {
	ctx := context.Background()
	rep := storagetest.NewReplicated(t, time.Second) // behind for a moment even on a loaded machine
	primary, err := pgx.Connect(ctx, rep.PrimaryURL)
	require.NoError(t, err)
	defer primary.Close(ctx)
	replica, err := pgx.Connect(ctx, rep.ReplicaURL)
	require.NoError(t, err)
	defer replica.Close(ctx)

	var inRecovery bool
	require.NoError(t, replica.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery))
	require.True(t, inRecovery)

	_, err = primary.Exec(ctx, `CREATE TABLE t (v int); INSERT INTO t VALUES (1)`)
	require.NoError(t, err)
	// Right after the write the delayed replica cannot have it yet...
	err = replica.QueryRow(ctx, `SELECT v FROM t`).Scan(new(int))
	require.Error(t, err)
	// ...and eventually it does.
	require.Eventually(t, func() bool {
		var v int
		return replica.QueryRow(ctx, `SELECT v FROM t`).Scan(&v) == nil && v == 1
	}, 10*time.Second, 20*time.Millisecond)
}

// BenchmarkNewDatabase measures what a test pays for its own migrated
// database, against creating an empty database with CREATE DATABASE (the
// floor), and the cost of a throwaway server start.
func BenchmarkNewDatabase(b *testing.B) {
	ctx := context.Background()
	storagetest.EmptyURL(b) // start the shared server outside the timings
	b.Run("from-template", func(b *testing.B) {
		for b.Loop() {
			storagetest.URL(b)
		}
	})
	b.Run("empty", func(b *testing.B) {
		for b.Loop() {
			storagetest.EmptyURL(b)
		}
	})
	start := time.Now()
	s, err := storagetest.Start(ctx, storagetest.ServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	startup := time.Since(start)
	_ = s.Stop()
	// What a test waits for its database when tests do ~200ms of work each
	// (prefetching hides the copy), against a bare CREATE DATABASE.
	perDB := func(fn func(testing.TB) string) time.Duration {
		const n = 10
		var waited time.Duration
		for range n {
			t0 := time.Now()
			fn(b)
			waited += time.Since(t0)
			time.Sleep(200 * time.Millisecond)
		}
		return waited / n
	}
	tpl, empty := perDB(storagetest.URL), perDB(storagetest.EmptyURL)
	fmt.Printf("ferry-bench: pgtest-new-database ferry=%s baseline=%s ratio=%.3f (wait for a migrated DB vs a bare CREATE DATABASE, tests of 200ms); server start %s\n",
		tpl.Round(time.Microsecond), empty.Round(time.Microsecond), float64(tpl)/float64(empty), startup.Round(time.Millisecond))
}

// A Durable server runs with PostgreSQL's default durability.
func TestDurableServer(t *testing.T) {
	ctx := context.Background()
	srv, err := storagetest.Start(ctx, storagetest.ServerOptions{Durable: true})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	defer srv.Stop()
	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var v string
		require.NoError(t, conn.QueryRow(ctx, `SELECT current_setting($1)`, setting).Scan(&v))
		require.Equal(t, "on", v, setting)
	}
}
