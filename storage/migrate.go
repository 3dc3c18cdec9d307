package storage

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// ErrSchemaTooNew is returned by Migrate when the database has a migration
// applied that this binary does not know: an older binary must not write to
// a schema that a newer one changed.
var ErrSchemaTooNew = errors.New("storage: database schema is newer than this binary")

// MigrationsTable records the applied migrations.
const MigrationsTable = "ferry_schema_migrations"

// migrateLockKey is the advisory lock that serialises concurrent Migrate
// calls across processes ("ferrymig" in ASCII).
const migrateLockKey int64 = 0x66657272796d6967

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migration is one numbered schema file.
type Migration struct {
	Version int    // from the file name's leading number
	Name    string // the file name, e.g. "0002_lease.sql"
	SQL     string
}

// MigrateOptions tunes MigrateWith. The zero value migrates Ferry's own
// embedded schema.
type MigrateOptions struct {
	// FS holds the migration files, named NNNN_name.sql, at its root.
	// Default: Ferry's embedded migrations.
	FS fs.FS
	// Logger receives one line per applied migration. Default: slog.Default().
	Logger *slog.Logger
}

// Migrate brings db's schema up to date with Ferry's embedded migrations.
// Each pending file runs in its own transaction under an advisory lock, so
// several processes may call Migrate at once; a file that fails is rolled
// back and named in the error. Running it again is a no-op. It refuses, with
// ErrSchemaTooNew, a database on which a newer binary has applied more.
func Migrate(ctx context.Context, db Handle) error {
	return MigrateWith(ctx, db, MigrateOptions{})
}

// MigrateWith is Migrate with options.
func MigrateWith(ctx context.Context, db Handle, opts MigrateOptions) error {
	migrations, err := LoadMigrations(opts.FS)
	if err != nil {
		return err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	for {
		var applied *Migration
		err := InTx(ctx, db, func(tx pgx.Tx) error {
			applied = nil
			next, err := lockAndFindPending(ctx, tx, migrations)
			if err != nil || next == nil {
				return err
			}
			if _, err := tx.Exec(ctx, next.SQL); err != nil {
				return fmt.Errorf("storage: migration %s: %w", next.Name, err)
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO ferry_schema_migrations (version, name) VALUES ($1, $2)`,
				next.Version, next.Name); err != nil {
				return fmt.Errorf("storage: recording migration %s: %w", next.Name, err)
			}
			applied = next
			return nil
		})
		if err != nil {
			return err
		}
		if applied == nil {
			return nil
		}
		logger.InfoContext(ctx, "applied schema migration", "version", applied.Version, "file", applied.Name)
	}
}

// lockAndFindPending takes the migration lock for the rest of tx and returns
// the first migration not yet applied, or nil.
func lockAndFindPending(ctx context.Context, tx pgx.Tx, migrations []Migration) (*Migration, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return nil, fmt.Errorf("storage: taking the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS ferry_schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("storage: creating %s: %w", MigrationsTable, err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM ferry_schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", MigrationsTable, err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", MigrationsTable, err)
	}
	known := 0
	if len(migrations) > 0 {
		known = migrations[len(migrations)-1].Version
	}
	if newest := slices.Max(append(done, 0)); newest > known {
		return nil, fmt.Errorf("%w: database is at version %d, this binary knows up to %d", ErrSchemaTooNew, newest, known)
	}
	for i := range migrations {
		if !slices.Contains(done, migrations[i].Version) {
			return &migrations[i], nil
		}
	}
	return nil, nil
}

// LoadMigrations reads and orders the migration files at the root of fsys
// (Ferry's embedded migrations when fsys is nil). A .sql file whose name is
// not NNNN_name.sql, or two files with one number, is an error.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	if fsys == nil {
		sub, err := fs.Sub(embeddedMigrations, "migrations")
		if err != nil {
			return nil, fmt.Errorf("storage: embedded migrations: %w", err)
		}
		fsys = sub
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("storage: listing migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("storage: migration file %q: name must look like 0001_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version == 0 {
			return nil, fmt.Errorf("storage: migration file %q: version must be > 0", e.Name())
		}
		sql, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("storage: reading migration %s: %w", e.Name(), err)
		}
		if len(out) > 0 && out[len(out)-1].Version == version {
			return nil, fmt.Errorf("storage: migrations %s and %s share version %d", out[len(out)-1].Name, e.Name(), version)
		}
		out = append(out, Migration{Version: version, Name: e.Name(), SQL: string(sql)})
	}
	return out, nil
}
