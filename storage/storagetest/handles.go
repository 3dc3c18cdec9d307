package storagetest

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/ferryhq/ferry/storage"
)

// HandleKind names one way a host gives Ferry its database.
type HandleKind string

const (
	// KindPool is a *pgxpool.Pool, through storage.FromPool.
	KindPool HandleKind = "pgxpool"
	// KindSQL is a *sql.DB of pgx's stdlib driver, through storage.FromSQL.
	KindSQL HandleKind = "database_sql"
	// KindSchema is a *pgxpool.Pool whose Ferry tables live in the schema
	// Schema (storage.WithSchema), on a database where they exist nowhere
	// else: SQL that does not qualify Ferry's tables fails there.
	KindSchema HandleKind = "pgxpool_in_schema"
	// KindBouncer is a *sql.DB of pgx's stdlib driver, through
	// storage.FromSQL, connected through PgBouncer in transaction-pooling
	// mode (see Bouncer) with pgx's exec mode: the shape of GitLab's
	// registry. Under CI=true a missing pgbouncer fails the test.
	KindBouncer HandleKind = "database_sql_via_pgbouncer"
)

// Schema is the schema of Ferry's tables on KindSchema handles. Its name
// needs quoting, so SQL that does not quote it fails too.
const Schema = "ferry Test"

// HandleKinds returns every HandleKind, for tests that run once per kind.
func HandleKinds() []HandleKind { return []HandleKind{KindPool, KindSQL, KindSchema, KindBouncer} }

// SQLDB returns a *sql.DB (pgx's stdlib driver) on a new migrated database
// (see URL), closed when the test ends.
func SQLDB(t testing.TB) *sql.DB {
	t.Helper()
	return openSQL(t, URL(t))
}

func openSQL(t testing.TB, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// OpenHandle returns a handle of kind on url whose pool is closed when the
// test ends. It migrates nothing. For KindBouncer, url must be a database
// this package made; the handle reaches it through the bouncer.
func OpenHandle(t testing.TB, kind HandleKind, url string) storage.Handle {
	t.Helper()
	switch kind {
	case KindPool, KindSchema:
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatalf("storagetest: %v", err)
		}
		t.Cleanup(pool.Close)
		if kind == KindPool {
			return storage.FromPool(pool)
		}
		h, err := storage.WithSchema(storage.FromPool(pool), Schema)
		if err != nil {
			t.Fatalf("storagetest: %v", err)
		}
		return h
	case KindSQL, KindBouncer:
		if kind == KindBouncer {
			url = ThroughBouncer(t, url)
		}
		h, err := storage.FromSQL(openSQL(t, url))
		if err != nil {
			t.Fatalf("storagetest: %v", err)
		}
		return h
	}
	t.Fatalf("storagetest: unknown handle kind %q", kind)
	return nil
}

// Handle returns a handle of kind on a new migrated database (see URL);
// for KindSchema, a new database with Ferry's tables in Schema only.
func Handle(t testing.TB, kind HandleKind) storage.Handle {
	t.Helper()
	if kind != KindSchema {
		return OpenHandle(t, kind, URL(t))
	}
	h := OpenHandle(t, kind, EmptyURL(t))
	if err := storage.Migrate(context.Background(), h, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("storagetest: migrating into schema %q: %v", Schema, err)
	}
	return h
}

// ForEachHandle runs fn once per HandleKind, as a subtest named after it.
func ForEachHandle(t *testing.T, fn func(t *testing.T, kind HandleKind)) {
	t.Helper()
	for _, kind := range HandleKinds() {
		t.Run(string(kind), func(t *testing.T) { fn(t, kind) })
	}
}
