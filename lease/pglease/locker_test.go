package pglease_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// The Locker passes the conformance suite on a host's pgx pool and on a
// host's *sql.DB alike.
func TestConformance(t *testing.T) {
	storagetest.ForEachHandle(t, func(t *testing.T, kind storagetest.HandleKind) {
		leasetest.Run(t, func(t *testing.T) lease.Locker {
			return pglease.New(storagetest.Handle(t, kind), pglease.Options{})
		})
	})
}

// newPool opens a pool on url, closed when the test ends.
func newPool(t testing.TB, url string, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestHeldErrorNamesHolder(t *testing.T) {
	pool := storagetest.Pool(t)
	host, _ := os.Hostname()
	leasetest.CheckHolderNames(t, pglease.New(storage.FromPool(pool), pglease.Options{Holder: "enqueuer-7f9c"}), "enqueuer-7f9c",
		pglease.New(storage.FromPool(pool), pglease.Options{}), fmt.Sprintf("%s/%d", host, os.Getpid()))
}

// The database's clock alone decides expiry: moving the row's expiry into
// the past (as if the server's clock had run on) frees the key even
// though the holder's local ExpiresAt is an hour away.
func TestDatabaseClockDecides(t *testing.T) {
	pool := storagetest.Pool(t)
	lk := pglease.New(storage.FromPool(pool), pglease.Options{})
	first, err := lk.Acquire(t.Context(), "k", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `UPDATE ferry_leases SET expires_at = statement_timestamp() - interval '1 ms' WHERE key = 'k'`); err != nil {
		t.Fatal(err)
	}
	if time.Until(first.ExpiresAt()) < 59*time.Minute {
		t.Fatalf("ExpiresAt %s", first.ExpiresAt())
	}
	second, err := lk.Acquire(t.Context(), "k", time.Hour)
	if err != nil {
		t.Fatalf("Acquire after the database's expiry: %v", err)
	}
	if err := first.Renew(t.Context()); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew of the expired lease: %v, want ErrLost", err)
	}
	if err := second.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// countingTracer counts the statements a pool sends.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func TestOneStatementEach(t *testing.T) {
	tracer := &countingTracer{}
	pool := newPool(t, storagetest.URL(t), func(c *pgxpool.Config) { c.ConnConfig.Tracer = tracer })
	leasetest.CheckRoundTrips(t, pglease.New(storage.FromPool(pool), pglease.Options{}), tracer.n.Load, leasetest.RoundTrips{HeldAcquire: 2})
}

func TestProcesses(t *testing.T) {
	const envURL = "FERRY_PGLEASE_TEST_URL"
	var opts leasetest.ProcessOptions
	if !leasetest.IsChild() {
		opts.Env = []string{envURL + "=" + storagetest.URL(t)}
	}
	leasetest.ContendAcrossProcesses(t, "enqueuer", opts, func(t *testing.T) lease.Locker {
		return pglease.New(storage.FromPool(newPool(t, os.Getenv(envURL), nil)), pglease.Options{})
	})
}
