package pglease_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/pglease"
)

func TestConformance(t *testing.T) {
	leasetest.Run(t, func(t *testing.T) lease.Locker {
		return pglease.New(pgtest.Pool(t), pglease.Options{})
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
	pool := pgtest.Pool(t)
	a := pglease.New(pool, pglease.Options{Holder: "enqueuer-7f9c"})
	b := pglease.New(pool, pglease.Options{})
	l, err := a.Acquire(t.Context(), "enqueuer", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(t.Context(), "enqueuer", time.Minute)
	var held *lease.HeldError
	if !errors.As(err, &held) || held.Holder != "enqueuer-7f9c" || held.ExpiresAt.IsZero() {
		t.Fatalf("Acquire of a held key: %v, want a HeldError naming enqueuer-7f9c and the expiry", err)
	}
	if !strings.Contains(err.Error(), `"enqueuer" is held by enqueuer-7f9c until `) {
		t.Errorf("message %q", err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The default holder names the host and process.
	l, err = b.Acquire(t.Context(), "enqueuer", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(t.Context())
	_, err = a.Acquire(t.Context(), "enqueuer", time.Minute)
	host, _ := os.Hostname()
	if !strings.Contains(err.Error(), host+"/") {
		t.Errorf("default holder: %v, want the host name %q in it", err, host)
	}
}

// The database's clock alone decides expiry: moving the row's expiry into
// the past (as if the server's clock had run on) frees the key even
// though the holder's local ExpiresAt is an hour away.
func TestDatabaseClockDecides(t *testing.T) {
	pool := pgtest.Pool(t)
	lk := pglease.New(pool, pglease.Options{})
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
	pool := newPool(t, pgtest.URL(t), func(c *pgxpool.Config) { c.ConnConfig.Tracer = tracer })
	lk := pglease.New(pool, pglease.Options{})
	other := pglease.New(pool, pglease.Options{})
	steps := []struct {
		name string
		fn   func(l *lease.Lease) error
	}{
		{"Acquire", func(l *lease.Lease) (err error) { *l, err = lk.Acquire(t.Context(), "k", time.Minute); return err }},
		{"Acquire of a held key", func(*lease.Lease) error {
			_, err := other.Acquire(t.Context(), "k", time.Minute)
			if !errors.Is(err, lease.ErrHeld) {
				return err
			}
			return nil
		}},
		{"Renew", func(l *lease.Lease) error { return (*l).Renew(t.Context()) }},
		{"Release", func(l *lease.Lease) error { return (*l).Release(t.Context()) }},
	}
	var l lease.Lease
	for _, s := range steps {
		before := tracer.n.Load()
		if err := s.fn(&l); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := tracer.n.Load() - before; n != 1 {
			t.Errorf("%s sent %d statements, want 1", s.name, n)
		}
	}
}

func TestProcesses(t *testing.T) {
	const envURL = "FERRY_PGLEASE_TEST_URL"
	var opts leasetest.ProcessOptions
	if !leasetest.IsChild() {
		opts.Env = []string{envURL + "=" + pgtest.URL(t)}
	}
	leasetest.ContendAcrossProcesses(t, "enqueuer", opts, func(t *testing.T) lease.Locker {
		return pglease.New(newPool(t, os.Getenv(envURL), nil), pglease.Options{})
	})
}
