package bbm

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/storage"
)

// Catalog is what registration and batching need to know about target
// tables. PostgresCatalog reads pg_catalog and information_schema and the
// tables themselves; bbmtest.Catalog is an in-memory fake.
type Catalog interface {
	// Describe resolves table (on the search_path when unqualified) and
	// checks column for strategy: IntegerRange needs an integer column;
	// NullKeys needs a valid partial index WHERE column IS NULL whose
	// leading column is an integer (the key). Errors wrap ErrInvalidTable,
	// ErrInvalidColumn or ErrMissingNullIndex.
	Describe(ctx context.Context, table TableName, column string, strategy Strategy) (Target, error)
	// KeyBounds returns the smallest and largest key of the rows in scope
	// (for NullKeys, of the rows whose column IS NULL); ok is false when
	// there are none.
	KeyBounds(ctx context.Context, t Target) (lo, hi int64, ok bool, err error)
	// NextNullBatch returns the key bounds of the first size rows whose
	// column IS NULL and whose key lies in [from, to]; ok is false when
	// there are none.
	NextNullBatch(ctx context.Context, t Target, from, to int64, size int) (start, end int64, ok bool, err error)
}

// Target is a resolved table and column.
type Target struct {
	Schema    string
	Table     string
	Column    string
	KeyColumn string
	Strategy  Strategy
	// TupleEstimate is the planner's row estimate (0 when never analyzed).
	TupleEstimate int64
}

func (t Target) ident() string { return pgx.Identifier{t.Schema, t.Table}.Sanitize() }

// PostgresCatalog is the Catalog on a Postgres database.
type PostgresCatalog struct {
	db storage.Querier
}

var _ Catalog = (*PostgresCatalog)(nil)

// NewPostgresCatalog returns a Catalog reading db.
func NewPostgresCatalog(db storage.Querier) *PostgresCatalog { return &PostgresCatalog{db: db} }

// integerTypes are the column types a key may have.
var integerTypes = map[string]bool{"smallint": true, "integer": true, "bigint": true}

// Describe implements Catalog.
func (c *PostgresCatalog) Describe(ctx context.Context, table TableName, column string, strategy Strategy) (Target, error) {
	ident := pgx.Identifier{table.Name}
	if table.Schema != "" {
		ident = pgx.Identifier{table.Schema, table.Name}
	}
	// to_regclass parses the quoted name as the server would and gives
	// NULL, not an error, when there is no such relation.
	var t Target
	var kind string
	err := c.db.QueryRow(ctx, `SELECT n.nspname, c.relname, c.relkind::text, GREATEST(c.reltuples, 0)::bigint
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, ident.Sanitize()).Scan(&t.Schema, &t.Table, &kind, &t.TupleEstimate)
	if errors.Is(err, pgx.ErrNoRows) {
		return Target{}, fmt.Errorf("%w: table %s does not exist", ErrInvalidTable, table)
	}
	if err != nil {
		return Target{}, fmt.Errorf("bbm: looking up table %s: %w", table, err)
	}
	if kind != "r" && kind != "p" {
		return Target{}, fmt.Errorf("%w: %s is not a table (relkind %s)", ErrInvalidTable, table, kind)
	}
	t.Column, t.Strategy = column, strategy
	colType, err := c.columnType(ctx, t.Schema, t.Table, column)
	if err != nil {
		return Target{}, err
	}
	switch strategy {
	case IntegerRange:
		if !integerTypes[colType] {
			return Target{}, fmt.Errorf("%w: %s.%s is %s; integer ranges need smallint, integer or bigint",
				ErrInvalidColumn, t.ident(), pgx.Identifier{column}.Sanitize(), colType)
		}
		t.KeyColumn = column
	case NullKeys:
		key, err := c.nullIndexKey(ctx, t)
		if err != nil {
			return Target{}, err
		}
		t.KeyColumn = key
	default:
		return Target{}, fmt.Errorf("%w: %q", ErrInvalidStrategy, strategy)
	}
	return t, nil
}

func (c *PostgresCatalog) columnType(ctx context.Context, schema, table, column string) (string, error) {
	var typ string
	err := c.db.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 AND column_name = $3`, schema, table, column).Scan(&typ)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: column %s does not exist on %s",
			ErrInvalidColumn, pgx.Identifier{column}.Sanitize(), pgx.Identifier{schema, table}.Sanitize())
	}
	if err != nil {
		return "", fmt.Errorf("bbm: looking up column %s: %w", column, err)
	}
	return typ, nil
}

// nullIndexKey finds a valid partial index on t whose predicate is exactly
// "column IS NULL" and returns its leading column, which must be an integer.
func (c *PostgresCatalog) nullIndexKey(ctx context.Context, t Target) (string, error) {
	rows, err := c.db.Query(ctx, `SELECT a.attname, format_type(a.atttypid, NULL)
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND i.indisready AND i.indpred IS NOT NULL
		  AND pg_get_expr(i.indpred, i.indrelid) = format('(%I IS NULL)', $2::text)
		ORDER BY i.indexrelid`, t.ident(), t.Column)
	if err != nil {
		return "", fmt.Errorf("bbm: looking up indexes of %s: %w", t.ident(), err)
	}
	type keyCol struct{ name, typ string }
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyCol, error) {
		var k keyCol
		return k, r.Scan(&k.name, &k.typ)
	})
	if err != nil {
		return "", fmt.Errorf("bbm: looking up indexes of %s: %w", t.ident(), err)
	}
	for _, k := range keys {
		if integerTypes[k.typ] {
			return k.name, nil
		}
	}
	col := pgx.Identifier{t.Column}.Sanitize()
	return "", fmt.Errorf("%w: %s needs an index like CREATE INDEX ON %s (id) WHERE %s IS NULL, "+
		"with an integer leading column, to find NULL batches without scanning the table",
		ErrMissingNullIndex, t.ident(), t.ident(), col)
}

// KeyBounds implements Catalog.
func (c *PostgresCatalog) KeyBounds(ctx context.Context, t Target) (int64, int64, bool, error) {
	key := pgx.Identifier{t.KeyColumn}.Sanitize()
	sql := `SELECT min(` + key + `), max(` + key + `) FROM ` + t.ident()
	if t.Strategy == NullKeys {
		sql += ` WHERE ` + pgx.Identifier{t.Column}.Sanitize() + ` IS NULL`
	}
	var lo, hi *int64
	if err := c.db.QueryRow(ctx, sql).Scan(&lo, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("bbm: reading the key range of %s: %w", t.ident(), err)
	}
	if lo == nil || hi == nil {
		return 0, 0, false, nil
	}
	return *lo, *hi, true, nil
}

// NextNullBatch implements Catalog.
func (c *PostgresCatalog) NextNullBatch(ctx context.Context, t Target, from, to int64, size int) (int64, int64, bool, error) {
	key := pgx.Identifier{t.KeyColumn}.Sanitize()
	col := pgx.Identifier{t.Column}.Sanitize()
	var lo, hi *int64
	err := c.db.QueryRow(ctx, `SELECT min(k), max(k) FROM (SELECT `+key+` AS k FROM `+t.ident()+
		` WHERE `+col+` IS NULL AND `+key+` BETWEEN $1 AND $2 ORDER BY `+key+` LIMIT $3) s`,
		from, to, size).Scan(&lo, &hi)
	if err != nil {
		return 0, 0, false, fmt.Errorf("bbm: finding the next NULL batch of %s: %w", t.ident(), err)
	}
	if lo == nil || hi == nil {
		return 0, 0, false, nil
	}
	return *lo, *hi, true, nil
}
