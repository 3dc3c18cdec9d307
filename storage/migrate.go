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

// MigrationsTable records which of Ferry's own migrations are applied, in
// the schema of Ferry's tables (see WithSchema). A host's migrations run
// through MigrateWith are recorded in a table of their own
// (MigrateOptions.Table), never here.
const MigrationsTable = "ferry_schema_migrations"

// migrateLockClass is the first key of the transaction-scoped advisory
// locks that serialise concurrent Migrate calls across processes; the
// second is a hash of the line's version table, so Ferry's line and a
// host's do not wait for each other ("migr" in ASCII).
const migrateLockClass int32 = 0x6d696772

var (
	upFileName   = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)(\.up)?\.sql$`)
	downFileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.down\.sql$`)
)

// Migration is one numbered schema change of a line of migrations.
type Migration struct {
	// Version is the file name's leading number.
	Version int
	// Name is the up file's name, e.g. "0002_lease.sql".
	Name string
	// Up is the SQL that applies the change.
	Up string
	// Down is the SQL that reverts it (from NNNN_name.down.sql), or "" when
	// the line has none. Every one of Ferry's migrations has one.
	Down string
}

// MigrateOptions tunes MigrateWith. The zero value migrates Ferry's own
// embedded schema.
type MigrateOptions struct {
	// FS holds a host's migration files at its root: NNNN_name.sql (or
	// NNNN_name.up.sql) and optionally NNNN_name.down.sql, which Migrate
	// does not run. Default: Ferry's embedded migrations.
	FS fs.FS
	// Table is the version table of FS's line of migrations, required with
	// FS, so that a host's versions never mix with Ferry's (MigrationsTable
	// is refused). It is resolved, and FS's files run, with the session's
	// search_path. Ferry's own line always uses MigrationsTable in the
	// handle's schema.
	Table string
	// UpTo stops after the migration of this version, e.g. to test an
	// upgrade from an older schema. Default 0: every migration.
	UpTo int
	// Logger receives one line per applied migration. Default: slog.Default().
	Logger *slog.Logger
}

// Migrate brings db's schema up to date with Ferry's embedded migrations,
// creating Ferry's tables in db's schema (WithSchema; default: the first
// schema of the search_path). Each pending file runs in its own
// transaction under a transaction-scoped advisory lock, so several
// processes may call Migrate at once, also through PgBouncer; a file that
// fails is rolled back and named in the error. Running it again is a no-op.
// It refuses, with ErrSchemaTooNew, a database on which a newer binary has
// applied more. logger gets one line per applied file (nil: slog.Default()).
//
// A host that runs Ferry's migrations with its own migrator instead uses
// Migrations or MigrationsFS.
func Migrate(ctx context.Context, db Handle, logger *slog.Logger) error {
	return MigrateWith(ctx, db, MigrateOptions{Logger: logger})
}

// line is one line of migrations: its files and where it records them.
type line struct {
	migrations []Migration
	table      string // sanitized, qualified version table
	lockKey    string // hashed into the advisory lock's second key
	schema     string // Ferry's schema, created and made the search_path; "" for none
}

// MigrateWith is Migrate with options; with FS and Table it runs a host's
// own line of migrations.
func MigrateWith(ctx context.Context, db Handle, opts MigrateOptions) error {
	if db == nil {
		return fmt.Errorf("%w: Migrate on a nil Handle", ErrConfig)
	}
	l, err := lineOf(db, opts)
	if err != nil {
		return err
	}
	if opts.UpTo > 0 {
		l.migrations = slices.DeleteFunc(l.migrations, func(m Migration) bool { return m.Version > opts.UpTo })
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	for {
		var applied *Migration
		err := InTx(ctx, db, func(tx pgx.Tx) error {
			applied = nil
			next, err := l.lockAndFindPending(ctx, tx)
			if err != nil || next == nil {
				return err
			}
			if _, err := tx.Exec(ctx, next.Up); err != nil {
				return fmt.Errorf("storage: migration %s: %w", next.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+l.table+` (version, name) VALUES ($1, $2)`,
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
		logger.InfoContext(ctx, "applied schema migration", "table", l.table, "version", applied.Version, "file", applied.Name)
	}
}

func lineOf(db Handle, opts MigrateOptions) (line, error) {
	if opts.FS == nil {
		if opts.Table != "" {
			return line{}, fmt.Errorf("%w: MigrateOptions.Table names a host's version table and needs FS; Ferry's own is %s", ErrConfig, MigrationsTable)
		}
		ms, err := Migrations()
		if err != nil {
			return line{}, err
		}
		table := Table(db, MigrationsTable)
		return line{migrations: ms, table: table, lockKey: table, schema: SchemaOf(db)}, nil
	}
	switch {
	case opts.Table == "":
		return line{}, fmt.Errorf("%w: MigrateOptions.FS needs Table, the version table of the host's own migrations", ErrConfig)
	case opts.Table == MigrationsTable:
		return line{}, fmt.Errorf("%w: %s records Ferry's own migrations; give the host's line a table of its own", ErrConfig, MigrationsTable)
	}
	if err := checkIdentifier("MigrateOptions.Table", opts.Table); err != nil {
		return line{}, err
	}
	ms, err := LoadMigrations(opts.FS)
	if err != nil {
		return line{}, err
	}
	table := pgx.Identifier{opts.Table}.Sanitize()
	return line{migrations: ms, table: table, lockKey: table}, nil
}

// lockAndFindPending takes the line's lock for the rest of tx, creates the
// schema and the version table when missing, and returns the first
// migration not yet applied, or nil.
func (l line) lockAndFindPending(ctx context.Context, tx pgx.Tx) (*Migration, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, migrateLockClass, l.lockKey); err != nil {
		return nil, fmt.Errorf("storage: taking the migration lock: %w", err)
	}
	if l.schema != "" {
		if err := useSchema(ctx, tx, l.schema); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+l.table+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("storage: creating %s: %w", l.table, err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM `+l.table)
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", l.table, err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", l.table, err)
	}
	known := 0
	if len(l.migrations) > 0 {
		known = l.migrations[len(l.migrations)-1].Version
	}
	if newest := slices.Max(append(done, 0)); newest > known {
		return nil, fmt.Errorf("%w: %s is at version %d, this binary knows up to %d", ErrSchemaTooNew, l.table, newest, known)
	}
	for i := range l.migrations {
		if !slices.Contains(done, l.migrations[i].Version) {
			return &l.migrations[i], nil
		}
	}
	return nil, nil
}

// useSchema creates schema when it is missing and makes it the search_path
// for the rest of tx only (SET LOCAL: nothing outlives the transaction, as
// PgBouncer's transaction pooling requires), so that Ferry's unqualified
// migration files create their tables there.
func useSchema(ctx context.Context, tx pgx.Tx, schema string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("storage: looking up schema %q: %w", schema, err)
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
			return fmt.Errorf("storage: creating schema %q: %w", schema, err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, ident); err != nil {
		return fmt.Errorf("storage: using schema %q: %w", schema, err)
	}
	return nil
}

// Migrations returns Ferry's own migrations in order, each with its up and
// down SQL, for a host that runs them with its own migrator (an in-house
// tool, or goose's Go migrations). Run each Up in a transaction, in order,
// with search_path set to the schema Ferry's tables belong in, and record
// them in a version table of the host's; Down reverts one. Ferry's
// packages find their tables in that schema when their Handle says so
// (WithSchema). Running them this way and running Migrate on the same
// database are alternatives: pick one.
func Migrations() ([]Migration, error) {
	sub, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("storage: embedded migrations: %w", err)
	}
	return LoadMigrations(sub)
}

// LoadMigrations reads and orders the migration files at the root of fsys
// (Ferry's embedded migrations when fsys is nil): NNNN_name.sql or
// NNNN_name.up.sql, and optionally NNNN_name.down.sql. A .sql file named
// otherwise, two up files with one number, or a down file without its up
// file is an error.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	if fsys == nil {
		return Migrations()
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("storage: listing migrations: %w", err)
	}
	var out []Migration
	downs := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		version, down, err := parseMigrationName(e.Name())
		if err != nil {
			return nil, err
		}
		sql, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("storage: reading migration %s: %w", e.Name(), err)
		}
		if down {
			downs[version] = string(sql)
			continue
		}
		if len(out) > 0 && out[len(out)-1].Version == version {
			return nil, fmt.Errorf("storage: migrations %s and %s share version %d", out[len(out)-1].Name, e.Name(), version)
		}
		out = append(out, Migration{Version: version, Name: e.Name(), Up: string(sql)})
	}
	for i := range out {
		out[i].Down = downs[out[i].Version]
		delete(downs, out[i].Version)
	}
	for v := range downs {
		return nil, fmt.Errorf("storage: migration %04d has a down file but no up file", v)
	}
	return out, nil
}

func parseMigrationName(name string) (version int, down bool, err error) {
	m := downFileName.FindStringSubmatch(name)
	down = m != nil
	if m == nil {
		m = upFileName.FindStringSubmatch(name)
	}
	if m == nil {
		return 0, false, fmt.Errorf("storage: migration file %q: name must look like 0001_name.sql (or .up.sql, .down.sql)", name)
	}
	version, _ = strconv.Atoi(m[1])
	if version == 0 {
		return 0, false, fmt.Errorf("storage: migration file %q: version must be > 0", name)
	}
	return version, down, nil
}
