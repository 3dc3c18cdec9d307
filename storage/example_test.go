package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/storage"
)

// A handler that checks a state another process has just changed must not
// read a lagging replica: UsePrimary makes every DB.Read under ctx go to
// the primary.
func ExampleUsePrimary() {
	ctx := storage.UsePrimary(context.Background())
	fmt.Println(storage.UsesPrimary(ctx))
	// Output: true
}

// InTx runs a transaction again after these errors; other errors are the
// caller's.
func ExampleIsRetryable() {
	serialization := fmt.Errorf("updating: %w", &pgconn.PgError{Code: "40001"})
	fmt.Println(storage.IsRetryable(serialization))
	fmt.Println(storage.IsRetryable(errors.New("constraint violated")))
	// Output:
	// true
	// false
}

// Ferry's schema ships inside the binary as numbered files.
func ExampleLoadMigrations() {
	migrations, err := storage.LoadMigrations(nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(migrations[0].Name)
	// Output: 0001_init.sql
}

// A host that talks to Postgres through database/sql with pgx's stdlib
// driver hands its *sql.DB to Ferry as is, and its replicas too: Wrap
// gives them Ferry's read-your-writes routing. Every Postgres-backed
// constructor (bbm.NewWorker, pglease.New, enqueuer.NewPostgresStore,
// storage.Migrate) takes the resulting Handle or *DB. Neither call
// connects; Ferry borrows the host's connections when it runs.
func ExampleFromSQL() {
	primary, err := sql.Open("pgx", "postgres://registry@primary.db.internal/registry")
	if err != nil {
		panic(err)
	}
	defer primary.Close()
	replica, err := sql.Open("pgx", "postgres://registry@replica.db.internal/registry")
	if err != nil {
		panic(err)
	}
	defer replica.Close()

	ph, err := storage.FromSQL(primary)
	if err != nil {
		panic(err) // storage.ErrNotPgx: another driver
	}
	rh, err := storage.FromSQL(replica)
	if err != nil {
		panic(err)
	}
	db, err := storage.Wrap(ph, rh)
	if err != nil {
		panic(err)
	}
	defer db.Close() // leaves the host's *sql.DBs open
	fmt.Println("routed over the host's handles")
	// Output: routed over the host's handles
}

// A host's own pgx pool works the same way through FromPool.
func ExampleFromPool() {
	pool, err := pgxpool.New(context.Background(), "postgres://registry@primary.db.internal/registry")
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	var h storage.Handle = storage.FromPool(pool)
	fmt.Println(h != nil)
	// Output: true
}

// A host that runs every schema change with its own migrator (golang-migrate
// reads MigrationsFS; goose and in-house tools take this list) applies
// Ferry's migrations in order, each Up in a transaction with search_path set
// to the schema of Ferry's tables, and records them in a version table of
// its own. Ferry's packages then get a Handle in that schema (WithSchema).
func ExampleMigrations() {
	ms, err := storage.Migrations()
	if err != nil {
		panic(err)
	}
	first := ms[0]
	fmt.Println(first.Version, first.Name, first.Down != "")
	// Output: 1 0001_init.sql true
}

// applyFerryMigrations is what a host's own migrator does with Migrations.
func applyFerryMigrations(ctx context.Context, conn *pgx.Conn, schema string, applied map[int]bool) error {
	ms, err := storage.Migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, pgx.Identifier{schema}.Sanitize()); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.Up); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO registry_ferry_versions (version) VALUES ($1)`, m.Version)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

var _ = applyFerryMigrations
